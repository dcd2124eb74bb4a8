"""The documentation's examples are tests, so they cannot rot.

* Every fenced ``python`` block of README.md and docs/**/*.md runs: the blocks of a page in order, in one
  fresh namespace per page, with a temporary folder as the working directory. That folder holds a small
  dataset made with the shipped demo CLIP (see :func:`docs_workspace`): ``a.png``, ``b.png``, ``images/``
  (PNGs with a ``.txt`` prompt beside each), ``manifest.jsonl`` and ``manifest_b.jsonl``, the results
  ``a.jsonl`` / ``b.jsonl`` with their ``.summary.json``, and ``scores/``, the results folder of ``images/``
  with ``--save-embeddings``. Tracebacks point at the Markdown file and line.
* A block that cannot run offline with the demo model is skipped when the line right before its fence is
  ``<!-- not-run: REASON -->``. Keep these few (:data:`MAX_NOT_RUN`).
* ``bash`` and ``text`` blocks (and blocks without a language): every ``clipgauge SUBCOMMAND`` must exist and
  every ``--option`` written after it must be one of that subcommand's options, read from its ``--help``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from clipgauge.cli import cli, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

#: Commands and options the docs may name before they exist, while someone adds them concurrently:
#: ``{"command": {"*"}}`` for a whole command, ``{"command": {"--option"}}`` for an option. An entry is used only
#: while its command or option is missing; once it exists it is checked like any other. Keep it empty otherwise:
#: ``clipgauge metrics`` and ``clipgauge score --metric`` (issue #11) were listed here until they landed.
PENDING: dict[str, set[str]] = {}

#: Blocks marked ``<!-- not-run: ... -->`` are exceptions (a hub model, a GPU, a cluster): keep them few.
MAX_NOT_RUN = 5

NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")
OPEN_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "text"}
COMMAND = re.compile(r"(?<![\w/.\[-])clipgauge\s+(?P<sub>[a-z][a-z-]*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the block's first code line
    lang: str
    code: str
    not_run: str | None  # the marker's reason, or None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of *page* (CommonMark fences: a fence closes with at least as many of its marks)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = OPEN_FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        close = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = i + 1
        while end < len(lines) and not close.match(lines[end]):
            end += 1
        body = [line[min(indent, len(line) - len(line.lstrip())):] for line in lines[i + 1:end]]
        marker = NOT_RUN.match(lines[i - 1]) if i > 0 else None
        blocks.append(Block(page, i + 2, m["info"].lower(), "\n".join(body) + "\n",
                            marker["reason"] if marker else None))
        i = end + 1
    return blocks


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


PYTHON_PAGES = [p for p in PAGES if any(b.lang == "python" for b in fenced_blocks(p))]


# --- the example dataset --------------------------------------------------------------------------------------

SHAPES = [("p0", "a red circle", "red", "circle"), ("p1", "a blue square", "blue", "square"),
          ("p2", "a green triangle", "green", "triangle"), ("p3", "a yellow circle", "yellow", "circle")]


def shape_image(colour: str, shape: str, size: int = 32) -> Image.Image:
    picture = Image.new("RGB", (64, 64), "white")
    draw, box = ImageDraw.Draw(picture), (32 - size // 2, 32 - size // 2, 32 + size // 2, 32 + size // 2)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), (32, box[1])], fill=colour)
    return picture


@pytest.fixture(scope="session")
def docs_workspace(tmp_path_factory) -> Path:
    """The folder every page's examples run in (a fresh copy per page); scored once with the demo CLIP."""
    root = tmp_path_factory.mktemp("docs_workspace")
    shape_image("red", "circle").save(root / "a.png")
    shape_image("blue", "square").save(root / "b.png")
    (root / "images").mkdir()
    rows_a, rows_b = [], []
    for k, (prompt_id, prompt, colour, shape) in enumerate(SHAPES):
        for seed in (0, 1):
            name, cfg = f"{k:03d}_{seed}.png", 3.0 + 4.0 * seed
            shape_image(colour, shape, 28 + 8 * seed).save(root / "images" / name)
            (root / "images" / name).with_suffix(".txt").write_text(prompt + "\n", encoding="utf-8")
            common = {"prompt_id": prompt_id, "seed": seed, "category": shape, "cfg": cfg, "prompt": prompt}
            rows_a.append({"image": f"images/{name}", **common})
            # run B: the second seed of every prompt gets the colour wrong
            wrong = SHAPES[(k + 1) % len(SHAPES)][2] if seed else colour
            shape_image(wrong, shape, 28 + 8 * seed).save(root / f"b_{name}")
            rows_b.append({"image": f"b_{name}", **common})
    for name, rows in (("manifest.jsonl", rows_a), ("manifest_b.jsonl", rows_b)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for manifest, out, more in (("manifest.jsonl", "a.jsonl", []), ("manifest_b.jsonl", "b.jsonl", []),
                                ("images", "scores", ["--save-embeddings"])):
        assert main(["score", str(root / manifest), "--model", "demo", "--device", "cpu",
                     "--out", str(root / out), *more]) == 0
    return root


# --- python blocks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_rel)
def test_python_examples_run(page: Path, docs_workspace: Path, tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    shutil.copytree(docs_workspace, work)
    monkeypatch.chdir(work)
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in fenced_blocks(page):
        if block.lang != "python" or block.not_run is not None:
            continue
        # padded so that tracebacks name the Markdown file and the block's own line numbers
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        exec(code, namespace)  # the documentation's own examples
        ran += 1
    if not ran:
        pytest.skip("every python block of this page is marked not-run")


def test_not_run_markers_are_attached_and_few() -> None:
    marked = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        starts = {b.line - 1 for b in fenced_blocks(page)}  # 1-based line of each opening fence
        inside = {n for b in fenced_blocks(page) for n in range(b.line, b.line + b.code.count("\n"))}
        for n, line in enumerate(lines, start=1):
            if NOT_RUN.match(line) and n not in inside:
                assert n + 1 in starts, f"{_rel(page)}:{n}: a not-run marker must be the line right before a fence"
                block = next(b for b in fenced_blocks(page) if b.line == n + 2)
                assert block.lang == "python", f"{_rel(page)}:{n}: not-run marks a python block, not {block.lang!r}"
                assert block.not_run, f"{_rel(page)}:{n}: say why the block cannot run"
                marked.append(block.where)
    assert len(marked) <= MAX_NOT_RUN, f"too many examples that do not run: {marked}"
    assert sum(b.lang == "python" and b.not_run is None for p in PAGES for b in fenced_blocks(p)) >= 10


# --- shell blocks: commands and options exist -------------------------------------------------------------------

def _help_section(args: list[str], title: str) -> list[str]:
    result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines, section = [], False
    for line in result.output.splitlines():
        if line and not line.startswith(" "):
            section = line.strip() == title
        elif section and re.match(r"^  \S", line):
            lines.append(re.split(r"\s{2,}", line.strip())[0])
    return lines


@pytest.fixture(scope="module")
def cli_options() -> dict[str, set[str]]:
    """Subcommand → its option names (both halves of ``--x / --no-x``), as ``clipgauge SUB --help`` shows them."""
    return {sub: {o for names in _help_section([sub], "Options:") for o in OPTION.findall(names)}
            for sub in _help_section([], "Commands:")}


def shell_commands(block: Block) -> list[tuple[str, list[str]]]:
    """``(subcommand, options)`` for each ``clipgauge SUB …`` in a shell or synopsis block."""
    text = re.sub(r"\\\n\s*", " ", block.code)  # line continuations
    found = []
    for line in text.splitlines():
        if block.lang != "text":
            line = re.sub(r"(^|\s)#.*$", "", line)  # comments
        starts = list(COMMAND.finditer(line))
        for k, m in enumerate(starts):
            segment = line[m.end():starts[k + 1].start() if k + 1 < len(starts) else len(line)]
            if block.lang != "text":
                segment = re.split(r"&&|\|\||;|\s\|\s", segment)[0]
            found.append((m["sub"], OPTION.findall(segment)))
    return found


SHELL_BLOCKS = [b for p in PAGES for b in fenced_blocks(p) if b.lang in SHELL_LANGS]


def test_documented_commands_and_options_exist(cli_options) -> None:
    problems, checked = [], 0
    for block in SHELL_BLOCKS:
        for sub, options in shell_commands(block):
            checked += 1
            if sub not in cli_options:
                if "*" not in PENDING.get(sub, ()):
                    problems.append(f"{block.where}: no command 'clipgauge {sub}'")
                continue
            for opt in options:
                if opt not in cli_options[sub] and opt not in PENDING.get(sub, ()):
                    problems.append(f"{block.where}: 'clipgauge {sub}' has no option {opt}")
    assert checked >= 30, "the docs' shell examples were not found"
    assert not problems, "\n".join(problems)


def test_shell_check_catches_a_wrong_option(cli_options) -> None:
    code = "clipgauge score m.jsonl --out r.jsonl \\\n  --no-such-option 1  # --not-this-one\n"
    block = Block(ROOT / "README.md", 1, "bash", code, None)
    ((sub, options),) = shell_commands(block)
    assert sub == "score" and options == ["--out", "--no-such-option"]
    assert "--no-such-option" not in cli_options["score"]
    assert "--out" in cli_options["score"] and {"--resume", "--no-resume"} <= cli_options["score"]


def test_every_command_has_a_page_and_a_row_in_the_readme(cli_options) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for sub in sorted(set(cli_options) | {k for k, v in PENDING.items() if "*" in v}):
        assert (ROOT / "docs" / "commands" / f"{sub}.md").is_file(), f"docs/commands/{sub}.md is missing"
        assert f"[`clipgauge {sub}`](docs/commands/{sub}.md)" in readme, f"README's command table lacks {sub}"


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert targets
    for target in targets:
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        assert (ROOT / target.split("#")[0]).exists(), f"README links to missing {target}"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
