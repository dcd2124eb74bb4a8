"""Layering of the ``clipgauge`` package: no import cycles, no folders that import each other, small files.

How the import graph is built (read from the source with :mod:`ast`, nothing is imported):

* Every ``.py`` file under ``src/clipgauge`` is a module; a package's ``__init__.py`` is the module named after
  the package (``clipgauge/report/__init__.py`` is ``clipgauge.report``).
* Every ``import`` / ``from … import`` statement anywhere in a file counts: at the top, inside functions and
  methods, in ``try`` blocks. A lazy import still makes the two modules depend on each other.
* Imports inside ``if TYPE_CHECKING:`` blocks are **not** counted: they never run and exist only for
  annotations (``from __future__ import annotations`` keeps them out of the runtime). They are still listed by
  :func:`type_checking_edges` and must not point at a folder that would form a folder cycle (checked too).
* Relative imports are resolved against the module's package. ``from X import name`` is an edge to the
  module ``X.name`` when that is a module (``from . import sections``), otherwise to ``X`` (its ``__init__``).
  ``import a.b.c`` is an edge to ``a.b.c``.
* Importing ``a.b.c`` runs ``a/b/__init__.py`` first, so the packages above a target are edges too, except the
  importer's own packages (they are imported before the importer runs; counting them would make every
  submodule depend on its own ``__init__``). So ``clipgauge.provenance`` importing ``clipgauge.scoring.scales``
  depends on ``clipgauge.scoring`` as well.
* Only edges between ``clipgauge`` modules are kept.

A "folder" is a top-level unit of the package: a subpackage (``clipgauge.report.build`` → ``report``) or a
top-level module (``clipgauge.provenance`` → ``provenance``). The root ``clipgauge/__init__.py`` is the
folder ``clipgauge`` and is left out of the folder graph (it only re-exports the public API).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "clipgauge"
ROOT = SRC / PACKAGE

MAX_LINES = 400
# Modules allowed over MAX_LINES, with the reason. Keep this empty: split a long module by concept instead.
LONG_MODULES: dict[str, str] = {}

# Module cycles allowed, each the sorted tuple of the modules on it. Keep this empty.
KNOWN_MODULE_CYCLES: set[tuple[str, ...]] = set()


# ----------------------------------------------------------------------------------------------- the graph
def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """(runtime imports, ``if TYPE_CHECKING:`` imports) anywhere in *tree*."""
    runtime: list[ast.stmt] = []
    typing_only: list[ast.stmt] = []

    def visit(node: ast.AST, in_type_checking: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (typing_only if in_type_checking else runtime).append(node)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, in_type_checking)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, in_type_checking)

    visit(tree, False)
    return runtime, typing_only


def _targets(node: ast.stmt, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The ``clipgauge`` modules that one import statement in *module* imports."""
    out: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            out.add(alias.name)
    else:
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            package = module if is_package else module.rpartition(".")[0]
            parts = package.split(".")
            if node.level > 1:
                parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.add(sub if sub in modules else base)
    # Importing a.b.c runs the __init__ of a.b first: that is an edge too, unless the importer is inside a.b
    # already (its own packages are imported before it runs).
    own = {module.rsplit(".", i)[0] for i in range(module.count(".") + 1)}
    for target in list(out):
        parts = target.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) not in own)
    return {t for t in out if t in modules}


def import_graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(runtime edges, ``TYPE_CHECKING``-only edges): module → the modules it imports."""
    modules = all_modules()
    names = set(modules)
    runtime: dict[str, set[str]] = {m: set() for m in modules}
    typing_only: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        run_nodes, tc_nodes = _imports(tree)
        for node in run_nodes:
            runtime[name] |= _targets(node, name, is_package, names) - {name}
        for node in tc_nodes:
            typing_only[name] |= _targets(node, name, is_package, names) - {name}
    return runtime, typing_only


def type_checking_edges() -> dict[str, set[str]]:
    return import_graphs()[1]


def folder_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def folder_graph(graph: dict[str, set[str]]) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """folder → folder → the module edges behind it (the root ``clipgauge`` package is left out)."""
    out: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for src, targets in graph.items():
        for dst in targets:
            a, b = folder_of(src), folder_of(dst)
            if a != b and PACKAGE not in (a, b):
                out[a][b].append((src, dst))
    return out


# ------------------------------------------------------------------------------------------------- cycles
def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one node (each one contains a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:  # iterative, so deep graphs cannot hit the recursion limit
        nonlocal counter
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest cycle through the first module of *component*, as a path that ends where it starts."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in seen:
                    seen.add(w)
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return component  # unreachable for a real component


def _short(module: str) -> str:
    rest = module[len(PACKAGE) + 1 :] if module.startswith(PACKAGE + ".") else module
    path = ROOT.joinpath(*rest.split(".")) if rest != PACKAGE else ROOT
    return f"{rest.replace('.', '/')}/__init__" if path.is_dir() else rest.replace(".", "/")


def describe_cycles(graph: dict[str, set[str]], components: list[list[str]]) -> str:
    lines = []
    for comp in components:
        path = cycle_path(graph, comp)
        lines.append(" -> ".join(_short(m) for m in path))
        if len(comp) > len(set(path)):
            lines.append(f"    (same strongly connected set: {', '.join(_short(m) for m in comp)})")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    return import_graphs()


def _edges(code: str, module: str, *, is_package: bool = False) -> tuple[set[str], set[str]]:
    modules = {"clipgauge", "clipgauge.report", "clipgauge.report.build", "clipgauge.report.sections",
               "clipgauge.scoring", "clipgauge.scoring.scales", "clipgauge.errors", module}
    run_nodes, tc_nodes = _imports(ast.parse(code))
    run = set().union(*(_targets(n, module, is_package, modules) for n in run_nodes)) - {module}
    tc = set().union(*(_targets(n, module, is_package, modules) for n in tc_nodes)) - {module}
    return run, tc


def test_imports_are_resolved_as_documented():
    # `from . import x` is the submodule x; a name that is not a module means the package's __init__
    assert _edges("from . import sections", "clipgauge.report.build")[0] == {"clipgauge.report.sections"}
    assert _edges("from . import build_report", "clipgauge.report.build")[0] == {"clipgauge.report"}
    # importing a.b.c runs a/b/__init__ too, unless the importer is inside a.b
    assert _edges("from .scoring.scales import SCALES", "clipgauge.errors")[0] == {
        "clipgauge.scoring.scales", "clipgauge.scoring"}
    assert _edges("from .sections import x", "clipgauge.report.build")[0] == {"clipgauge.report.sections"}
    assert _edges("import clipgauge.report.sections as s", "clipgauge.report.build")[0] == {
        "clipgauge.report.sections"}
    # a package __init__ resolves relative imports against itself; `..` goes up
    assert _edges("from .build import x", "clipgauge.report", is_package=True)[0] == {"clipgauge.report.build"}
    assert _edges("from ..errors import E", "clipgauge.report.build")[0] == {"clipgauge.errors"}
    # imports inside functions count; TYPE_CHECKING ones are kept apart; other libraries are ignored
    code = "import numpy\nif TYPE_CHECKING:\n    from ..errors import E\ndef f():\n    from . import sections\n"
    assert _edges(code, "clipgauge.report.build") == ({"clipgauge.report.sections"}, {"clipgauge.errors"})


def test_the_real_graph_is_read(graphs):
    runtime, _ = graphs
    assert "clipgauge.report.build" in runtime["clipgauge.report"]
    assert "clipgauge.scoring.scales" in runtime["clipgauge"]


def test_no_module_import_cycles(graphs):
    runtime, _ = graphs
    components = strongly_connected(runtime)
    unknown = [c for c in components if tuple(c) not in KNOWN_MODULE_CYCLES]
    assert not unknown, "import cycles between clipgauge modules (imports inside functions count):\n" + (
        describe_cycles(runtime, unknown)
    )


def test_no_folders_import_each_other(graphs):
    runtime, typing_only = graphs
    merged = {m: runtime[m] | typing_only[m] for m in runtime}
    folders = folder_graph(merged)
    problems = []
    for a in sorted(folders):
        for b in sorted(folders[a]):
            if a < b and a in folders.get(b, {}):
                ab = ", ".join(f"{_short(s)} -> {_short(d)}" for s, d in sorted(folders[a][b]))
                ba = ", ".join(f"{_short(s)} -> {_short(d)}" for s, d in sorted(folders[b][a]))
                problems.append(f"{a} <-> {b}\n    {a} -> {b}: {ab}\n    {b} -> {a}: {ba}")
    assert not problems, "folders of clipgauge that import each other:\n" + "\n".join(problems)


def test_no_folder_cycles(graphs):
    runtime, typing_only = graphs
    merged = {m: runtime[m] | typing_only[m] for m in runtime}
    folders = folder_graph(merged)
    simple = {a: set(bs) for a, bs in folders.items()}
    components = strongly_connected(simple)
    lines = []
    for comp in components:
        path = cycle_path(simple, comp)
        hops = []
        for a, b in zip(path, path[1:]):
            src, dst = sorted(folders[a][b])[0]
            hops.append(f"    {a} -> {b}: {_short(src)} -> {_short(dst)}")
        lines.append(" -> ".join(path) + "\n" + "\n".join(hops))
        if len(comp) > len(set(path)):
            lines.append(f"    (same strongly connected set: {', '.join(comp)})")
    assert not components, "cycles between folders of clipgauge:\n" + "\n".join(lines)


def test_input_code_does_not_import_provenance(graphs):
    runtime, typing_only = graphs
    bad = sorted(
        f"{_short(m)} -> {_short(t)}"
        for m in runtime
        if m == "clipgauge.sources" or m.startswith("clipgauge.sources.")
        for t in runtime[m] | typing_only[m]
        if t == "clipgauge.provenance" or t.startswith("clipgauge.scoring.provenance")
    )
    assert not bad, "input code (clipgauge.sources) imports provenance:\n" + "\n".join(bad)


def test_no_long_modules():
    too_long = []
    for name, path in all_modules().items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and name not in LONG_MODULES:
            too_long.append(f"{path.relative_to(SRC.parent)}: {n} lines")
    header = f"modules over {MAX_LINES} lines (split by concept, or list in LONG_MODULES with a reason):\n"
    assert not too_long, header + "\n".join(too_long)


def test_long_module_exceptions_are_still_needed():
    modules = all_modules()
    stale = [
        name
        for name in LONG_MODULES
        if name not in modules or len(modules[name].read_text(encoding="utf-8").splitlines()) <= MAX_LINES
    ]
    assert not stale, f"LONG_MODULES lists modules that are gone or short now: {stale}"
