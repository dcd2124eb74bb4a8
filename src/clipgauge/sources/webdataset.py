"""WebDataset tar shards (``shards/{00000..00999}.tar``) as a streaming row source.

A sample is the run of consecutive tar members sharing a *key* — the member path up to the first dot
of its file name (``dir/000123.jpg`` and ``dir/000123.txt`` → key ``dir/000123``), as WebDataset and
img2dataset write them. Each sample gives one row:

* image: the first member with an image extension (``jpg jpeg png webp gif bmp tif tiff``);
* prompt: the ``.txt`` member (surrounding whitespace stripped, as for sidecar files), else the first of the
  ``.json`` member's fields ``prompt``, ``caption``, ``txt``, ``text`` present (the prompt columns of every
  input, :data:`clipgauge.sources.tables.PROMPT_COLUMNS`); ``prompt_key`` names another member extension or
  JSON field;
* carried fields: ``key``, ``prompt`` and ``json`` (the ``.json`` member's text, or null).

Text members are read as UTF-8 with invalid sequences replaced by U+FFFD, and lone surrogates in the ``.json``
member's values become U+FFFD too (:mod:`clipgauge.text`).

Tar files are read, never extracted: no member is written to disk. Still, members with absolute paths,
``..`` components, links or device entries are refused (their sample gets an ``error``), an image member
larger than ``max_image_bytes`` (``--max-image-bytes``, 512 MiB by default) or another member over 256 MiB is
not read (its size is in its tar header: the sample gets an ``error`` and memory stays bounded), and a
missing, truncated or corrupt shard gives rows with an ``error`` — one per sample read before the damage plus
one for the unreadable rest — instead of stopping the job. Tars may be gzip/bzip2/xz-compressed (slower to
skip through on resume: they cannot seek).
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..image_files import DEFAULT_MAX_IMAGE_BYTES, too_large
from ..text import clean_value, decode_text
from .shards import RowSource, Selection, SourceRow, common_root, files_fingerprint, relative_name, short_error
from .tables import PROMPT_COLUMNS, first_present

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
#: members other than images larger than this are not read (their sample gets an error); images: max_image_bytes
MAX_MEMBER_BYTES = 256 * 2**20

_NOTHING = Selection(1, frozenset())
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def is_tar_path(path: str | Path) -> bool:
    return str(path).lower().endswith(TAR_SUFFIXES)


class WebDatasetSource(RowSource):
    """Samples of one or more WebDataset tar files, in file order then member order."""

    kind = "webdataset"

    def __init__(self, spec: str, paths: list[Path], *, prompt_key: str | None = None,
                 require_prompt: bool = True, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> None:
        self.spec = spec
        self.max_image_bytes = int(max_image_bytes)  # image members over this are error rows, never read
        self.paths = [Path(p) for p in paths]
        self.prompt_key = prompt_key
        self.require_prompt = require_prompt
        root = common_root(self.paths)
        self.names = [relative_name(p, root) for p in self.paths]

    def units(self) -> list[str]:
        return self.names

    def unit_rows(self, unit: int) -> int:
        return sum(1 for _ in self.iter_unit(unit, 0, _NOTHING))

    def iter_unit(self, unit: int, first: int, selection: Selection) -> Iterator[SourceRow]:
        yield from _iter_tar(self.paths[unit], self.names[unit], first, selection, self.prompt_key,
                             self.require_prompt, self.max_image_bytes)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": self.kind, "units": len(self.paths), "prompt_key": self.prompt_key,
                "files_sha256": files_fingerprint(self.names, self.paths)}

    def schema(self):
        import pyarrow as pa

        return pa.schema([("key", pa.string()), ("prompt", pa.string()), ("json", pa.string())])


def split_key(name: str) -> tuple[str, str]:
    """``dir/000123.seg.jpg`` → (``dir/000123``, ``seg.jpg``): WebDataset's key/extension split."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why a member must not be used (absolute path, ``..``, not a regular file), or None."""
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return f"unsafe tar member '{name}': absolute path"
    if ".." in re.split(r"[/\\]", name):
        return f"unsafe tar member '{name}': '..' in its path"
    if not member.isfile():
        kind = ("symbolic link" if member.issym() else "hard link" if member.islnk()
                else "device or FIFO" if (member.isdev()) else "special entry")
        return f"unsafe tar member '{name}': a {kind}, not a regular file"
    return None


def _iter_tar(path: Path, name: str, first: int, selection: Selection, prompt_key: str | None,
              require_prompt: bool = True, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> Iterator[SourceRow]:
    index = first
    try:
        tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by the with-block below
    except FileNotFoundError:
        yield _broken(index, name, f"shard not found: {name}")
        return
    except Exception as exc:  # noqa: BLE001 - not a tar, unreadable, corrupt first header
        yield _broken(index, name, f"corrupt shard {name}: {short_error(exc)}")
        return
    with tar:
        key: str | None = None
        members: dict[str, bytes | None] = {}
        problems: list[str] = []
        want = False
        broken: str | None = None
        try:
            while True:
                member = tar.next()
                if member is None:
                    break
                if member.isdir():
                    continue
                mkey, ext = split_key(member.name)
                if mkey.rpartition("/")[2].startswith("."):
                    continue  # hidden files (._foo resource forks and the like) are not samples
                if mkey != key:
                    if key is not None:
                        yield _sample(index, name, key, members, problems, want, prompt_key, require_prompt)
                        index += 1
                    key, members, problems, want = mkey, {}, [], selection.wants(index)
                reason = unsafe_member(member)
                if reason is not None:
                    problems.append(reason)
                elif ext in members:
                    problems.append(f"duplicate member '{member.name}'")
                elif not want:
                    members[ext] = None
                elif ext.rpartition(".")[2] in IMAGE_EXTENSIONS and member.size > max_image_bytes:
                    problems.append(too_large(member.size, max_image_bytes, f"image member '{member.name}'"))
                elif member.size > MAX_MEMBER_BYTES:  # the header's size: checked before a byte is read
                    problems.append(f"member '{member.name}' is larger than {MAX_MEMBER_BYTES >> 20} MiB")
                else:
                    try:
                        members[ext] = tar.extractfile(member).read()
                    except Exception as exc:  # noqa: BLE001 - truncated data: this sample's error
                        problems.append(f"corrupt member '{member.name}': {short_error(exc)}")
        except Exception as exc:  # noqa: BLE001 - a damaged shard must not stop the job
            broken = f"corrupt shard {name}: {short_error(exc)} (the rest of this shard cannot be read)"
        else:
            broken = _tail_problem(tar, path, name)
        if key is not None:
            yield _sample(index, name, key, members, problems, want, prompt_key, require_prompt)
            index += 1
        if broken is not None:
            yield _broken(index, name, broken)


def _tail_problem(tar: tarfile.TarFile, path: Path, name: str) -> str | None:
    """tarfile stops silently at an invalid header after the first: detect that (uncompressed tars)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(6).startswith(_COMPRESSED_MAGIC):
                return None
            size = fh.seek(0, 2)
            if tar.offset > size:
                return f"corrupt shard {name}: truncated at byte {size} (the rest of this shard cannot be read)"
            fh.seek(tar.offset)
            block = fh.read(512)
    except OSError as exc:
        return f"corrupt shard {name}: {short_error(exc)}"
    if block.strip(b"\0"):
        return (f"corrupt shard {name}: invalid tar header at byte {tar.offset} "
                f"(the rest of this shard cannot be read)")
    return None


def _broken(index: int, name: str, reason: str) -> SourceRow:
    return SourceRow(index, f"{name}:", {"key": None, "prompt": None, "json": None}, error=reason)


def _text(data: bytes | None) -> str | None:
    return None if data is None else decode_text(data)


def _sample(index: int, name: str, key: str, members: dict[str, bytes | None], problems: list[str], want: bool,
            prompt_key: str | None, require_prompt: bool = True) -> SourceRow:
    fields: dict[str, Any] = {"key": key, "prompt": None, "json": None}
    row = SourceRow(index, f"{name}:{key}", fields)
    if not want:
        row.skipped = True
        return row
    if problems:
        row.error = problems[0]
        return row
    try:
        meta_text = _text(members.get("json"))
        meta = clean_value(json.loads(meta_text)) if meta_text is not None else None
    except json.JSONDecodeError as exc:
        row.error = f"{key}.json: {short_error(exc)}"
        return row
    fields["json"] = meta_text
    row.prompt = _prompt(members, meta, prompt_key)
    fields["prompt"] = row.prompt if isinstance(row.prompt, str) else None
    image_ext = next((e for e in members if e.rpartition(".")[2] in IMAGE_EXTENSIONS), None)
    if image_ext is None:
        row.error = f"no image in sample {key} (members: {', '.join(sorted(members)) or 'none'})"
    elif row.prompt is None and require_prompt:
        what = f"'{prompt_key}'" if prompt_key else f".txt, or {'/'.join(PROMPT_COLUMNS)} in .json"
        row.error = f"no caption in sample {key} ({what})"
    else:
        row.image = members[image_ext]
    return row


def _prompt(members: dict[str, bytes | None], meta: Any, prompt_key: str | None) -> Any:
    if prompt_key is not None:
        if prompt_key in members:
            return _text(members[prompt_key])
        return meta.get(prompt_key) if isinstance(meta, dict) else None
    if "txt" in members:
        text = _text(members["txt"])
        return text.strip() if text is not None else None
    if isinstance(meta, dict):
        field = first_present(meta, PROMPT_COLUMNS)
        return meta[field] if field is not None else None
    return None
