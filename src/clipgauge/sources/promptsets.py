"""Benchmark prompt sets (PartiPrompts, DrawBench): download once, verify, cache, parse, make manifests.

Neither file ships with clipgauge. On first use each is downloaded from its public source, checked, and
kept in the cache folder (``$CLIPGAUGE_CACHE/promptsets``, else ``$XDG_CACHE_HOME/clipgauge/promptsets``,
else ``~/.cache/clipgauge/promptsets``); a local copy can be given instead (``file=``, ``--file``).

* **PartiPrompts** (Yu et al. 2022; 1,632 prompts; columns Prompt, Category, Challenge, Note; Apache-2.0),
  ``PartiPrompts.tsv`` from the google-research/parti repository, pinned by SHA-256: a download that
  differs is refused.
* **DrawBench** (Saharia et al. 2022, Imagen; 200 prompts in 11 categories; no licence stated, so it is
  never bundled), the CSV export of the Imagen authors' Google Sheet. Sheet exports are generated on the
  fly and are not guaranteed byte-stable, so no checksum is pinned in the code: the download must have
  200 prompts in 11 categories, and its SHA-256 is recorded beside the cached copy on first use and
  checked on every later use (trust on first use). Pin a checksum explicitly with ``sha256=`` /
  ``--sha256``.

Prompt ids are stable across filters: ``parti-0000`` … ``parti-1631`` and ``drawbench-000`` …
``drawbench-199`` (0-based row order of the source file).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..atomic import write_atomic
from ..errors import UsageError


@dataclass(frozen=True)
class PromptSetSource:
    """Where a prompt set comes from and how it is checked."""

    name: str
    title: str
    url: str
    filename: str
    sha256: str | None
    n_prompts: int
    n_categories: int
    has_challenge: bool
    licence: str
    id_width: int


PROMPT_SETS: dict[str, PromptSetSource] = {
    "parti": PromptSetSource(
        name="parti",
        title="PartiPrompts",
        url="https://raw.githubusercontent.com/google-research/parti/main/PartiPrompts.tsv",
        filename="PartiPrompts.tsv",
        sha256="fab29e41bb512a169b56acab4cf2a41dcb675e285df2efcde6640c7dd3c440eb",
        n_prompts=1632,
        n_categories=12,
        has_challenge=True,
        licence="Apache-2.0 (google-research/parti)",
        id_width=4,
    ),
    "drawbench": PromptSetSource(
        name="drawbench",
        title="DrawBench",
        url="https://docs.google.com/spreadsheets/d/1y7nAbmR4FREi6npB1u-Bo3GFdwdOPYJc617rBOxIRHY/gviz/tq?tqx=out:csv",
        filename="DrawBench.csv",
        sha256=None,  # a Sheets export is not byte-stable; checked by shape, then pinned on first use
        n_prompts=200,
        n_categories=11,
        has_challenge=False,
        licence="not stated by the authors (not redistributed by clipgauge)",
        id_width=3,
    ),
}

#: Accepted header names (case-insensitive) of the prompt, category and challenge columns.
_PROMPT_HEADERS = ("prompt", "prompts", "text", "caption")
_CATEGORY_HEADERS = ("category", "categories")
_CHALLENGE_HEADERS = ("challenge",)


@dataclass(frozen=True)
class Prompt:
    """One benchmark prompt; ``challenge`` is None for sets without that column (DrawBench)."""

    prompt_id: str
    prompt: str
    category: str | None
    challenge: str | None


@dataclass(frozen=True)
class PromptSet:
    """A loaded prompt set: its prompts, where they were read from, and how the file was verified."""

    source: PromptSetSource
    prompts: tuple[Prompt, ...]
    path: Path
    sha256: str
    verification: str

    def categories(self) -> list[str]:
        return sorted({p.category for p in self.prompts if p.category is not None})

    def challenges(self) -> list[str]:
        return sorted({p.challenge for p in self.prompts if p.challenge is not None})


def cache_dir() -> Path:
    """The folder for downloaded prompt sets (not created here)."""
    root = os.environ.get("CLIPGAUGE_CACHE")
    if root:
        return Path(root).expanduser() / "promptsets"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "clipgauge" / "promptsets"


def get_source(name: str) -> PromptSetSource:
    """The :class:`PromptSetSource` called *name* (``parti`` or ``drawbench``); :class:`UsageError` if unknown."""
    try:
        return PROMPT_SETS[name.lower()]
    except KeyError:
        raise UsageError(f"unknown prompt set '{name}' (choose from {', '.join(PROMPT_SETS)})") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(source: PromptSetSource, timeout: float) -> bytes:
    request = urllib.request.Request(source.url, headers={"User-Agent": f"clipgauge/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - fixed https URLs
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        message = f"cannot download {source.title} from {source.url} ({reason}); download {source.filename} yourself "
        raise UsageError(message + "and give its path as the prompt set's file",
                         cli=message + "and pass it with --file PATH") from None


def _write_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, data)


def _pin_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def fetch(name: str, *, sha256: str | None = None, timeout: float = 30.0) -> tuple[Path, str, str]:
    """The cached file of prompt set *name*, downloading and verifying it if needed.

    Returns ``(path, sha256, verification)``. The expected checksum is *sha256* if given, else the pinned
    one, else (DrawBench) the one recorded when the file was first downloaded. A cached file that fails
    the check is downloaded again; a download that fails it raises :class:`UsageError` (nothing cached).
    """
    source = get_source(name)
    path = cache_dir() / source.filename
    pin = _pin_path(path)
    expected = (sha256 or source.sha256 or "").lower() or None
    recorded = pin.read_text().strip() if expected is None and pin.is_file() else None
    if path.is_file():
        data = path.read_bytes()
        digest = sha256_bytes(data)
        if digest == (expected or recorded or digest) and _cached_ok(source, data, path.name):
            return path, digest, _verification(source, sha256, recorded)
    data = _download(source, timeout)
    digest = sha256_bytes(data)
    want = expected or recorded
    if want is not None and digest != want:
        why = (f"expected {want}" if expected else
               f"expected {want}, recorded at the first download in {pin} (if the source was updated on purpose, "
               f"delete that file)")
        message = (f"{source.title} downloaded from {source.url} has SHA-256 {digest}, {why}: the file changed "
                   f"upstream or the download was altered; check it, then ")
        raise UsageError(message + f"give its path as the prompt set's file (to accept it, expect SHA-256 {digest})",
                         cli=message + f"pass it with --file PATH (or --sha256 {digest} to accept it)")
    prompts = parse(source, data, source.filename)
    if not _has_shape(source, prompts):
        message = (f"{source.url} does not look like {source.title}: {len(prompts)} prompts in "
                   f"{len({p.category for p in prompts})} categories, expected {source.n_prompts} in "
                   f"{source.n_categories}; ")
        raise UsageError(message + "give the path of a good copy as the prompt set's file",
                         cli=message + "pass a good copy with --file PATH")
    _write_atomic(path, data)
    if source.sha256 is None:
        _write_atomic(pin, (digest + "\n").encode())
    if want is None:
        return path, digest, (f"no published checksum: checked for {source.n_prompts} prompts in "
                              f"{source.n_categories} categories; SHA-256 recorded in {pin} for later use")
    return path, digest, _verification(source, sha256, recorded)


def _verification(source: PromptSetSource, override: str | None, recorded: str | None) -> str:
    if override:
        return "SHA-256 matches --sha256"
    if source.sha256:
        return "SHA-256 matches the pinned checksum"
    if recorded:
        return "SHA-256 matches the one recorded at first download"
    return f"no published checksum: checked for {source.n_prompts} prompts in {source.n_categories} categories"


def _has_shape(source: PromptSetSource, prompts: Sequence[Prompt]) -> bool:
    return len(prompts) == source.n_prompts and len({p.category for p in prompts}) == source.n_categories


def _cached_ok(source: PromptSetSource, data: bytes, filename: str) -> bool:
    try:
        return _has_shape(source, parse(source, data, filename))
    except UsageError:
        return False


def _find(header: Sequence[str], names: Iterable[str]) -> int | None:
    lowered = [h.strip().lower().lstrip("\ufeff") for h in header]
    for n in names:
        if n in lowered:
            return lowered.index(n)
    return None


def parse(source: PromptSetSource, data: bytes, filename: str = "") -> list[Prompt]:
    """Prompts from the bytes of a prompt-set file: TSV (``.tsv``, and PartiPrompts by default), CSV, or Parquet.

    The header names the columns (case-insensitive: ``Prompt``/``Prompts``, ``Category``, ``Challenge``).
    Rows with an empty prompt are skipped. Raises :class:`UsageError` for an unreadable file.
    """
    suffix = Path(filename).suffix.lower()
    if suffix == ".parquet" or data[:4] == b"PAR1":
        table = _parquet_rows(data)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{filename or source.title} is not UTF-8 text: {exc}") from None
        tsv = suffix == ".tsv" or (suffix not in (".csv",) and source.name == "parti")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tsv else ",",
                            quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        table = [row for row in reader]
    if not table:
        raise UsageError(f"{filename or source.title} is empty")
    header, body = table[0], table[1:]
    i_prompt = _find(header, _PROMPT_HEADERS)
    if i_prompt is None:
        raise UsageError(
            f"{filename or source.title} has no prompt column (header: {', '.join(header[:6])}); "
            f"expected one of {', '.join(_PROMPT_HEADERS)}"
        )
    i_cat = _find(header, _CATEGORY_HEADERS)
    i_chal = _find(header, _CHALLENGE_HEADERS) if source.has_challenge else None

    def cell(row: list[str], i: int | None) -> str | None:
        if i is None or i >= len(row):
            return None
        value = row[i].strip()
        return value or None

    out = []
    for row in body:
        prompt = row[i_prompt] if i_prompt < len(row) else ""
        if not prompt.strip():
            continue
        out.append(Prompt(prompt_id=f"{source.name}-{len(out):0{source.id_width}d}", prompt=prompt,
                          category=cell(row, i_cat), challenge=cell(row, i_chal)))
    return out


def _parquet_rows(data: bytes) -> list[list[str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
        raise UsageError(f"cannot read Parquet prompt file: {exc}") from None
    columns = table.column_names
    values = [table.column(c).to_pylist() for c in columns]
    return [list(columns)] + [["" if v is None else str(v) for v in row] for row in zip(*values)]


def load_prompt_set(
    name: str, *, file: str | Path | None = None, sha256: str | None = None, timeout: float = 30.0
) -> PromptSet:
    """Load prompt set *name* from *file*, or from the cache (downloading it on first use).

    A local *file* is read as given (its SHA-256 is reported and compared with the pinned one, a mismatch
    is noted, not refused, unless *sha256* is given explicitly).
    """
    source = get_source(name)
    if file is not None:
        path = Path(file).expanduser()
        if not path.is_file():
            raise UsageError(f"prompt file not found: {path}")
        data = path.read_bytes()
        digest = sha256_bytes(data)
        if sha256 and digest != sha256.lower():
            raise UsageError(f"{path} has SHA-256 {digest}, expected {sha256.lower()}",
                             cli=f"{path} has SHA-256 {digest}, expected {sha256.lower()} (--sha256)")
        if sha256:
            verification = "SHA-256 matches --sha256"
        elif source.sha256:
            same = digest == source.sha256
            verification = ("local file; SHA-256 matches the pinned checksum" if same else
                            "local file; SHA-256 differs from the pinned checksum of the public file")
        else:
            verification = "local file; no pinned checksum"
        prompts = tuple(parse(source, data, path.name))
        if not _has_shape(source, prompts):
            verification += (f"; {len(prompts)} prompts in {len({p.category for p in prompts})} categories "
                             f"(the public set has {source.n_prompts} in {source.n_categories})")
        return PromptSet(source, prompts, path, digest, verification)
    path, digest, verification = fetch(name, sha256=sha256, timeout=timeout)
    return PromptSet(source, tuple(parse(source, path.read_bytes(), path.name)), path, digest, verification)


def _select(values: Sequence[str], wanted: Iterable[str], what: str) -> set[str]:
    by_lower = {v.lower(): v for v in values}
    chosen = set()
    for w in wanted:
        key = w.strip().lower()
        if key not in by_lower:
            raise UsageError(f"unknown {what} '{w.strip()}' (choose from {', '.join(values)})")
        chosen.add(by_lower[key])
    return chosen


def generation_manifest(
    prompt_set: PromptSet,
    *,
    categories: Iterable[str] = (),
    challenges: Iterable[str] = (),
    repeat: int | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a generation manifest and its columns.

    Columns: ``prompt_id``, ``prompt``, ``category``, ``challenge`` (sets that have it), and ``seed``
    (0 … repeat−1, one row per seed, prompt-major) when *repeat* is given. *categories* / *challenges*
    keep only prompts in those groups (case-insensitive); unknown names raise :class:`UsageError`.
    """
    source = prompt_set.source
    categories, challenges = list(categories), list(challenges)
    if challenges and not source.has_challenge:
        raise UsageError(f"{source.title} has no challenge column")
    if repeat is not None and repeat < 1:
        raise UsageError("the number of repeats must be at least 1", cli="--repeat must be at least 1")
    keep_cat = _select(prompt_set.categories(), categories, "category") if categories else None
    keep_chal = _select(prompt_set.challenges(), challenges, "challenge") if challenges else None
    columns = ["prompt_id", "prompt", "category"] + (["challenge"] if source.has_challenge else [])
    if repeat is not None:
        columns.append("seed")
    rows = []
    for p in prompt_set.prompts:
        if keep_cat is not None and p.category not in keep_cat:
            continue
        if keep_chal is not None and p.challenge not in keep_chal:
            continue
        base = {"prompt_id": p.prompt_id, "prompt": p.prompt, "category": p.category}
        if source.has_challenge:
            base["challenge"] = p.challenge
        if repeat is None:
            rows.append(base)
        else:
            rows.extend({**base, "seed": s} for s in range(repeat))
    return rows, columns
