"""Validation prompt libraries: the prompts a tracker scores generated images against.

A library is an ordered set of distinct prompts, each with a short *name* that becomes its metric key
(``clip/prompt/NAME``). Sources (see :func:`load_prompt_library`):

* ``"default"`` — 42 prompts written for clipgauge across subjects, styles, counting, colour, spatial
  relations, rendered text and abstract ideas; ``"default:counting,colour"`` keeps some categories;
* ``"parti"`` / ``"parti:Animals,Vehicles"`` — PartiPrompts, all or some categories (``"drawbench[:…]"``
  likewise), through :mod:`clipgauge.sources.promptsets`; names are the stable prompt ids (``parti-0042``).
  For a local copy of the file use :func:`promptset_library` (``file=``);
* a JSON file: a list of prompts, or a ``{"name": "prompt"}`` mapping (the user prompt libraries of
  fine-tuning tools); a ``.txt`` file: one prompt per line;
* a list of prompt strings, a ``{name: prompt}`` dict, or a :class:`PromptLibrary`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UsageError

#: Categories of the default library, in file order.
DEFAULT_CATEGORIES = ("subject", "style", "counting", "colour", "spatial", "text", "abstract")

_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class PromptLibrary:
    """Distinct prompts with unique names, in a fixed order. ``source`` says where they came from."""

    names: tuple[str, ...]
    prompts: tuple[str, ...]
    source: str = "prompts"

    def __post_init__(self) -> None:
        if len(self.names) != len(self.prompts):
            raise UsageError("names and prompts differ in length")
        if len(set(self.names)) != len(self.names):
            raise UsageError("prompt names must be unique")

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.prompts)

    def items(self) -> list[tuple[str, str]]:
        """``(name, prompt)`` pairs in order."""
        return list(zip(self.names, self.prompts))

    def prompt_of(self, name: str) -> str | None:
        """The prompt called *name*, or None."""
        return dict(self.items()).get(name)

    def name_of(self, prompt: str) -> str:
        """The name of *prompt* in this library, or a name made from its text (:func:`slug`) if absent."""
        for n, p in zip(self.names, self.prompts):
            if p == prompt:
                return n
        return slug(prompt)


def slug(text: str, max_length: int = 48) -> str:
    """A metric-key-friendly name for a prompt: lowercase words joined by ``-``, at most *max_length* chars."""
    s = _SLUG.sub("-", text.lower()).strip("-")[:max_length].rstrip("-")
    return s or "empty"


def from_prompts(prompts: Sequence[str], source: str = "prompts") -> PromptLibrary:
    """A library from a list of prompts (duplicates dropped, names from :func:`slug`, made unique)."""
    seen: dict[str, None] = {}
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise UsageError(f"{source}: prompt {i + 1} is not text (got {type(p).__name__})")
        seen.setdefault(p)
    names: list[str] = []
    taken: set[str] = set()
    for p in seen:
        base = name = slug(p)
        k = 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
        names.append(name)
    return PromptLibrary(tuple(names), tuple(seen), source)


def from_mapping(mapping: Mapping[str, Any], source: str = "prompts") -> PromptLibrary:
    """A library from a ``{name: prompt}`` mapping, in its order. A prompt may not appear under two names."""
    names, prompts, owner = [], [], {}
    for name, prompt in mapping.items():
        if not isinstance(prompt, str):
            raise UsageError(f"{source}: the value of '{name}' is not a prompt string (got {type(prompt).__name__})")
        if prompt in owner:
            raise UsageError(f"{source}: the prompt {prompt!r} appears twice (as '{owner[prompt]}' and '{name}')")
        owner[prompt] = str(name)
        names.append(str(name))
        prompts.append(prompt)
    return PromptLibrary(tuple(names), tuple(prompts), source)


def default_library(categories: Sequence[str] | None = None) -> PromptLibrary:
    """The built-in library (names ``category/short-name``), optionally only some *categories*."""
    text = resources.files("clipgauge.track").joinpath("data/default_prompts.json").read_text(encoding="utf-8")
    lib = from_mapping(json.loads(text), "default")
    if not categories:
        return lib
    unknown = sorted(set(categories) - set(DEFAULT_CATEGORIES))
    if unknown:
        raise UsageError(f"unknown default-library categories: {', '.join(unknown)} "
                         f"(choose from {', '.join(DEFAULT_CATEGORIES)})")
    keep = [(n, p) for n, p in lib.items() if n.split("/", 1)[0] in categories]
    return PromptLibrary(tuple(n for n, _ in keep), tuple(p for _, p in keep), f"default:{','.join(categories)}")


def promptset_library(name: str = "parti", categories: Sequence[str] | None = None, *,
                      file: str | Path | None = None) -> PromptLibrary:
    """A benchmark prompt set — ``parti`` (PartiPrompts) or ``drawbench`` — all of it or only some
    *categories* (case-insensitive), read with :func:`clipgauge.sources.promptsets.load_prompt_set` (from
    *file*, else the verified cache, downloading on first use). Names are the sets' stable prompt ids
    (``parti-0042``); a prompt text that appears twice is kept once, under its first id."""
    from ..sources.promptsets import load_prompt_set

    pset = load_prompt_set(name, file=file)
    items = list(pset.prompts)
    label = name
    if categories:
        known = {c.lower(): c for c in pset.categories()}
        unknown = [c for c in categories if c.lower() not in known]
        if unknown:
            raise UsageError(f"unknown {pset.source.title} categories: {', '.join(unknown)} "
                             f"(choose from {', '.join(pset.categories())})")
        wanted = {known[c.lower()] for c in categories}
        items = [p for p in items if p.category in wanted]
        label = f"{name}:{','.join(categories)}"
    mapping: dict[str, str] = {}
    seen: set[str] = set()
    for p in items:
        if p.prompt not in seen:
            seen.add(p.prompt)
            mapping[p.prompt_id] = p.prompt
    return from_mapping(mapping, label)


def load_file(path: str | Path) -> PromptLibrary:
    """A library from a JSON file (list of prompts or ``{name: prompt}`` mapping) or a ``.txt`` (one per line)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"prompt file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read prompt file {path}: {exc}") from None
    if path.suffix.lower() == ".txt":
        return from_prompts([ln.strip() for ln in text.splitlines() if ln.strip()], str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"prompt file {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if isinstance(data, list):
        return from_prompts(data, str(path))
    if isinstance(data, dict):
        return from_mapping(data, str(path))
    raise UsageError(f"prompt file {path} must hold a list of prompts or a {{\"name\": \"prompt\"}} mapping")


def load_prompt_library(spec: str | Path | Sequence[str] | Mapping[str, str] | PromptLibrary) -> PromptLibrary:
    """Turn a prompt-library spec (see the module docstring) into a :class:`PromptLibrary`.

    Raises :class:`UsageError` with one line for an unknown spec, an unreadable file or an empty library.
    """
    if isinstance(spec, PromptLibrary):
        lib = spec
    elif isinstance(spec, Mapping):
        lib = from_mapping(spec)
    elif isinstance(spec, Path):
        lib = load_file(spec)
    elif isinstance(spec, str):
        kind, _, rest = spec.partition(":")
        cats = [c.strip() for c in rest.split(",") if c.strip()]
        if kind == "default":
            lib = default_library(cats)
        elif kind in ("parti", "partiprompts", "drawbench"):
            lib = promptset_library("drawbench" if kind == "drawbench" else "parti", cats)
        elif Path(spec).expanduser().is_file() or spec.lower().endswith((".json", ".txt")):
            lib = load_file(spec)
        else:
            raise UsageError(f"unknown prompt library '{spec}': use default[:CATEGORY], parti[:CATEGORY], "
                             "drawbench[:CATEGORY], a .json or .txt file, or a list of prompts")
    else:
        lib = from_prompts(list(spec))
    if not len(lib):
        raise UsageError(f"the prompt library {lib.source} is empty")
    return lib
