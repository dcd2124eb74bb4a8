"""Only regular files are read as images, and never more than ``--max-image-bytes`` of one (issue #20).

Named pipes (a read waits for a writer forever), devices (``/dev/zero`` never ends), sockets and folders are error
rows found by ``stat`` before anything opens them; a file, Parquet cell, WebDataset member or HF dataset cell over
the byte limit is an error row, and a tar member over it is never read. Every other row is scored.

What could hang or exhaust memory on broken code runs in a child process watched for time and memory
(:func:`run_bounded`), or in a thread that is released after a timeout, so this file itself never hangs.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import jpeg_bytes, random_rgb
from PIL import Image

from clipgauge.cli import main
from clipgauge.errors import DecodeError
from clipgauge.sinks import read_results

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipes, /dev/zero and /proc: Linux")

LIMIT = 4096  # bytes: the small --max-image-bytes of these tests
DEFAULT = 512 * 2**20
KILL_RSS = 3 << 30  # a child above this resident memory is killed (the old code read /dev/zero without end)


# --------------------------------------------------------------------------- helpers

def small_jpeg(seed: int) -> bytes:
    data = jpeg_bytes(random_rgb(seed, size=(32, 24)))
    assert len(data) < LIMIT
    return data


def big_png(seed: int) -> bytes:
    """A real PNG of noise, well over :data:`LIMIT` bytes (and far under every pixel limit)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    assert len(buf.getvalue()) > 2 * LIMIT
    return buf.getvalue()


def bind_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
    except OSError as exc:  # e.g. a path longer than AF_UNIX allows
        sock.close()
        pytest.skip(f"cannot make a socket file here: {exc}")
    return sock


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_bounded(argv: list, *, cwd: Path, seconds: float = 240, max_rss: int = KILL_RSS, python: list = ()) -> dict:
    """``python -m clipgauge ARGV`` (or ``python PYTHON``) in a child, killed once it runs longer than *seconds* or
    its resident memory passes *max_rss* bytes. Returns its exit code (None when killed), why it was killed, its
    output and peak RSS."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        args = list(python) or ["-m", "clipgauge", *map(str, argv)]
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env,
                                stdout=out, stderr=err, text=True)
        start, peak, killed = time.monotonic(), 0, None
        while proc.poll() is None:
            peak = max(peak, _rss(proc.pid))
            if peak > max_rss:
                killed = f"resident memory {peak >> 20} MiB > {max_rss >> 20} MiB"
            elif time.monotonic() - start > seconds:
                killed = f"still running after {seconds:.0f} s"
            if killed:
                proc.kill()
                break
            time.sleep(0.05)
        proc.wait()
        out.seek(0)
        err.seek(0)
        return {"code": None if killed else proc.returncode, "killed": killed, "stdout": out.read(),
                "stderr": err.read(), "peak_rss": peak, "seconds": time.monotonic() - start}


def in_thread(fn, fifo: Path, seconds: float = 20):
    """``fn()`` in a thread; if it is still blocked after *seconds* (opening *fifo* waits for a writer), release it
    by opening the pipe for writing, then fail."""
    got: dict = {}

    def target():
        try:
            got["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            got["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a reader is waiting: this opens, and closing ends it
        os.close(fd)
        t.join(seconds)
        pytest.fail(f"reading {fifo} blocked (waited {seconds} s for a writer)")
    if "error" in got:
        raise got["error"]
    return got.get("value")


def results_by(out: Path, key: str) -> dict:
    return {r[key]: r for r in read_results(out)}


# --------------------------------------------------------------------------- paths that are not regular files

def test_manifest_of_hostile_paths_ends_in_bounded_time_and_memory(tmp_path):
    """A FIFO, /dev/zero, a folder, a socket and a missing file: each an error row with its reason, the good rows
    scored, in bounded time and memory (the old code hung on the FIFO and read /dev/zero until the machine ran out
    of memory). With the default options: what a new user runs."""
    (tmp_path / "ok1.jpg").write_bytes(small_jpeg(1))
    (tmp_path / "ok2.jpg").write_bytes(small_jpeg(2))
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "folder.png").mkdir()
    sock = bind_socket(tmp_path / "s.png")
    images = ["ok1.jpg", "pipe.png", "/dev/zero", "folder.png", "s.png", "gone.png", "ok2.jpg"]
    with open(tmp_path / "m.jsonl", "w", encoding="utf-8") as fh:
        for name in images:
            fh.write(json.dumps({"image": name, "prompt": "a small picture"}) + "\n")
    try:
        got = run_bounded(["score", tmp_path / "m.jsonl", "--model", "demo", "--device", "cpu", "--no-language",
                           "--out", "r.jsonl"], cwd=tmp_path)
    finally:
        sock.close()
    assert got["killed"] is None, f"{got['killed']}; stderr: {got['stderr'][-2000:]}"
    assert got["code"] == 1, got["stderr"][-2000:]  # some rows could not be scored: exit 1, no traceback
    assert "Traceback" not in got["stderr"]
    rows = results_by(tmp_path / "r.jsonl", "image")
    assert list(rows) == images  # every row back, in order
    p = f"{tmp_path}{os.sep}"  # reasons name the path as the manifest resolved it
    expected = {
        "pipe.png": f"not a regular file: {p}pipe.png (a named pipe)",
        "/dev/zero": "not a regular file: /dev/zero (a device)",
        "folder.png": f"is a directory, not an image: {p}folder.png",
        "s.png": f"not a regular file: {p}s.png (a socket)",
        "gone.png": f"file not found: {p}gone.png",
    }
    for name, reason in expected.items():
        assert rows[name]["error"] == reason, name
        assert rows[name]["cosine"] is None
    for name in ("ok1.jpg", "ok2.jpg"):
        assert rows[name]["error"] is None and -1 <= rows[name]["cosine"] <= 1
    assert got["peak_rss"] < 2 << 30  # nothing read /dev/zero


def test_dev_zero_is_refused_in_bounded_memory(tmp_path):
    """``/dev/zero`` as an image: refused by its ``stat`` (the old code read it until memory ran out)."""
    code = ("from clipgauge.decode import load_image\n"
            "try:\n    load_image('/dev/zero')\nexcept Exception as exc:\n    print(exc)\n")
    got = run_bounded([], cwd=tmp_path, seconds=120, max_rss=1 << 30, python=["-c", code])
    assert got["killed"] is None, got["killed"]
    assert got["stdout"].strip() == "not a regular file: /dev/zero (a device)"


def test_input_that_is_a_pipe_is_a_usage_error(tmp_path):
    """``clipgauge score PIPE``: one line and exit 2 at once, never a wait for a writer."""
    os.mkfifo(tmp_path / "m.jsonl")
    got = run_bounded(["score", "m.jsonl", "--model", "demo", "--device", "cpu"], cwd=tmp_path, seconds=120)
    assert got["killed"] is None and got["code"] == 2
    assert got["stderr"].strip() == "clipgauge: error: input not a regular file: m.jsonl (a named pipe)"


def test_read_file_never_opens_a_pipe_or_reads_a_device(tmp_path):
    from clipgauge.decode import load_image, read_file

    fifo = tmp_path / "p.png"
    os.mkfifo(fifo)
    with pytest.raises(DecodeError) as info:
        in_thread(lambda: read_file(fifo), fifo)
    assert info.value.reason == f"not a regular file: {fifo} (a named pipe)"
    with pytest.raises(DecodeError, match=r"^not a regular file: /dev/null \(a device\)$"):
        load_image("/dev/null")  # refused by its stat, never opened
    with pytest.raises(DecodeError, match=r"^is a directory, not an image: "):
        load_image(tmp_path)
    sock = bind_socket(tmp_path / "s.png")
    try:
        with pytest.raises(DecodeError, match=r"\(a socket\)$"):
            read_file(tmp_path / "s.png")
    finally:
        sock.close()


def test_a_path_swapped_for_a_pipe_after_its_stat_is_not_waited_on(tmp_path, monkeypatch):
    """The second guard: a path that was a regular file at its ``stat`` but is a pipe at the ``open`` (a swap in
    between) is opened non-blocking and refused by ``fstat``."""
    from clipgauge import image_files

    fifo = tmp_path / "p.png"
    os.mkfifo(fifo)
    monkeypatch.setattr(image_files, "path_problem", lambda path, max_bytes=None: None)  # the stat saw a file
    with pytest.raises(DecodeError) as info:
        in_thread(lambda: image_files.read_image_file(fifo), fifo)
    assert info.value.reason == f"not a regular file: {fifo} (a named pipe)"
    grown = tmp_path / "grown.png"  # small at its stat, larger by the time it is read
    grown.write_bytes(b"x" * 100)
    with pytest.raises(DecodeError, match=r"^file too large: it grew past the limit of 10 bytes while read"):
        image_files.read_image_file(grown, 10)


def test_reads_stop_one_byte_past_the_limit_whatever_the_file_holds():
    """Memory is bounded even where the size from ``stat`` is wrong (a device, a file growing while read)."""
    from clipgauge.image_files import read_bounded

    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        assert len(read_bounded(fd, 3 << 20, size_hint=0)) == (3 << 20) + 1
        assert len(read_bounded(fd, 10, size_hint=10**12)) == 11
    finally:
        os.close(fd)


def test_image_folder_lists_pipes_and_broken_links_as_error_rows(tmp_path):
    """An entry named like an image that is not a regular file is a row with its reason, not silently left out."""
    from clipgauge.scoring.pipeline import unreadable
    from clipgauge.sources.detect import open_source

    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(small_jpeg(0))
    os.mkfifo(folder / "b.png")
    os.symlink("/dev/zero", folder / "c.png")
    os.symlink(folder / "nowhere.png", folder / "d.png")
    for stem in "abcd":
        (folder / f"{stem}.txt").write_text(f"prompt {stem}")
    rows = list(open_source(folder).rows())
    assert [r.fields["image"] for r in rows] == ["a.jpg", "b.png", "c.png", "d.png"]
    assert [unreadable(r.image) for r in rows] == [
        None, f"not a regular file: {folder / 'b.png'} (a named pipe)",
        f"not a regular file: {folder / 'c.png'} (a device)", f"file not found: {folder / 'd.png'}"]


# --------------------------------------------------------------------------- the byte limit

def test_scorer_max_image_bytes_for_files_and_bytes_even_when_cached(tmp_path):
    """``Scorer(max_image_bytes=)``: a file or in-memory bytes over it are error rows; an embedding cached by a run
    with a larger limit is not handed out for them."""
    from clipgauge import Scorer

    small, big = small_jpeg(4), big_png(5)
    (tmp_path / "small.jpg").write_bytes(small)
    (tmp_path / "big.png").write_bytes(big)
    images = [tmp_path / "small.jpg", tmp_path / "big.png", small, big]
    reasons = [None, f"file too large: {len(big)} bytes > limit {LIMIT} (--max-image-bytes)", None,
               f"image too large: {len(big)} bytes > limit {LIMIT} (--max-image-bytes)"]
    cache = tmp_path / "cache"
    roomy = Scorer("demo", device="cpu", cache_dir=cache).score_pairs(images, "a picture")
    assert roomy.error == [None] * 4
    for cache_dir in (None, cache):
        tight = Scorer("demo", device="cpu", max_image_bytes=LIMIT, cache_dir=cache_dir)
        assert tight.provenance()["image_limits"]["max_bytes"] == LIMIT
        got = tight.score_pairs(images, "a picture")
        assert got.error == reasons
        np.testing.assert_allclose(got.cosine[[0, 2]], roomy.cosine[[0, 2]], atol=1e-6)
    with pytest.raises(ValueError, match="max_image_bytes"):
        Scorer("demo", device="cpu", max_image_bytes=0)


def test_image_file_over_the_limit_is_an_error_row(tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(small_jpeg(16))
    (tmp_path / "b.png").write_bytes(big_png(17))
    lines = [json.dumps({"image": name, "prompt": "p"}) for name in ("a.jpg", "b.png")]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    code = main(["score", str(tmp_path / "m.jsonl"), "--model", "demo", "--device", "cpu", "--no-language",
                 "--max-image-bytes", "4K", "--out", str(tmp_path / "r.jsonl")])
    assert code == 1 and "Traceback" not in capsys.readouterr().err
    rows = results_by(tmp_path / "r.jsonl", "image")
    assert rows["a.jpg"]["error"] is None and rows["a.jpg"]["cosine"] is not None
    assert rows["b.png"]["error"] == f"file too large: {len(big_png(17))} bytes > limit {LIMIT} (--max-image-bytes)"


def test_parquet_bytes_over_the_limit(tmp_path, capsys):
    images = [small_jpeg(6), big_png(7), small_jpeg(8)]
    pq.write_table(pa.table({"key": ["a", "b", "c"], "jpg": images, "caption": ["one", "two", "three"]}),
                   tmp_path / "p.parquet")
    code = main(["score", str(tmp_path / "p.parquet"), "--model", "demo", "--device", "cpu", "--no-language",
                 "--max-image-bytes", str(LIMIT), "--out", str(tmp_path / "r.jsonl")])
    capsys.readouterr()
    assert code == 1
    rows = results_by(tmp_path / "r.jsonl", "key")
    assert rows["b"]["error"] == f"image too large: {len(images[1])} bytes > limit {LIMIT} (--max-image-bytes)"
    assert rows["a"]["error"] is None and rows["c"]["error"] is None and rows["c"]["cosine"] is not None


def test_hf_dataset_bytes_over_the_limit(tmp_path, capsys):
    datasets = pytest.importorskip("datasets", reason="the 'hf' extra (datasets) is not installed")
    images = [small_jpeg(9), big_png(10)]
    ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in images], "caption": ["x", "y"]},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "caption": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "ds"))
    code = main(["score", str(tmp_path / "ds"), "--model", "demo", "--device", "cpu", "--no-language",
                 "--max-image-bytes", "4K", "--out", str(tmp_path / "r.jsonl")])
    capsys.readouterr()
    assert code == 1
    rows = read_results(tmp_path / "r.jsonl")
    assert rows[0]["error"] is None and rows[0]["cosine"] is not None
    assert rows[1]["error"] == f"image too large: {len(images[1])} bytes > limit {LIMIT} (--max-image-bytes)"


def _member(name: str, data: bytes) -> bytes:
    """One tar member (header and padded data) as bytes."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info.tobuf(tarfile.GNU_FORMAT) + data + b"\0" * (-len(data) % 512)


@pytest.fixture()
def spy_reads(monkeypatch):
    """The names of the tar members whose data is read (``TarFile.extractfile``, still doing its work)."""
    names: list[str] = []
    original = tarfile.TarFile.extractfile

    def extractfile(self, member):
        names.append(member.name if isinstance(member, tarfile.TarInfo) else member)
        return original(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", extractfile)
    return names


def test_webdataset_member_over_the_limit_is_never_read(tmp_path, capsys, spy_reads):
    big = big_png(11)
    with open(tmp_path / "s.tar", "wb") as fh:
        fh.write(_member("0.jpg", small_jpeg(12)) + _member("0.txt", b"zero") + _member("1.png", big)
                 + _member("1.txt", b"one") + _member("2.jpg", small_jpeg(13)) + _member("2.txt", b"two")
                 + b"\0" * 1024)
    code = main(["score", str(tmp_path / "s.tar"), "--model", "demo", "--device", "cpu", "--no-language",
                 "--max-image-bytes", str(LIMIT), "--out", str(tmp_path / "r.jsonl")])
    capsys.readouterr()
    assert code == 1
    rows = results_by(tmp_path / "r.jsonl", "key")
    assert rows["1"]["error"] == (f"image member '1.png' too large: {len(big)} bytes > limit {LIMIT} "
                                  "(--max-image-bytes)")
    assert rows["0"]["error"] is None and rows["2"]["error"] is None and rows["2"]["cosine"] is not None
    assert "1.png" not in spy_reads and "0.jpg" in spy_reads


def test_webdataset_member_of_2_gib_is_refused_from_its_header(tmp_path, capsys, spy_reads):
    """A 2 GiB image member (a hole in a sparse tar file: it costs no disk) is refused by the default limit from
    its header; the samples after it are read and scored."""
    size = 2 * 2**30
    path = tmp_path / "s.tar"
    with open(path, "wb") as fh:
        fh.write(_member("0.jpg", small_jpeg(14)) + _member("0.txt", b"zero"))
        info = tarfile.TarInfo("1.jpg")
        info.size = size
        fh.write(info.tobuf(tarfile.GNU_FORMAT))
        fh.seek(size, os.SEEK_CUR)  # the member's data: a hole
        fh.write(_member("1.txt", b"one") + _member("2.jpg", small_jpeg(15)) + _member("2.txt", b"two")
                 + b"\0" * 1024)
    if path.stat().st_blocks * 512 > 64 << 20:
        pytest.skip("this file system does not keep holes in files")
    code = main(["score", str(path), "--model", "demo", "--device", "cpu", "--no-language",
                 "--out", str(tmp_path / "r.jsonl")])
    capsys.readouterr()
    assert code == 1
    rows = results_by(tmp_path / "r.jsonl", "key")
    assert rows["1"]["error"] == f"image member '1.jpg' too large: {size} bytes > limit {DEFAULT} (--max-image-bytes)"
    assert rows["0"]["error"] is None and rows["2"]["error"] is None
    assert "1.jpg" not in spy_reads


# --------------------------------------------------------------------------- the option

@pytest.mark.parametrize(("text", "value"), [("4096", 4096), ("4K", 4096), ("3MiB", 3 << 20), ("1g", 1 << 30)])
def test_max_image_bytes_option_units(text, value):
    from clipgauge.cli.options import ByteSize

    assert ByteSize().convert(text, None, None) == value


@pytest.mark.parametrize("bad", ["0", "-1", "1.5M", "12MB", "lots"])
def test_max_image_bytes_option_refuses_bad_values(capsys, bad, tmp_path):
    assert main(["score", str(tmp_path / "m.jsonl"), "--model", "demo", "--max-image-bytes", bad]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--max-image-bytes'" in err and len(err.strip().splitlines()) == 1


def test_fingerprint_records_the_limit_only_when_changed():
    """Runs written before the option existed (no key in their fingerprint) still resume at the default; a run with
    another limit is another run."""
    from clipgauge.pipeline.plan import ScoreOptions, ScoringPlan

    default = ScoringPlan(ScoreOptions(model="demo")).fingerprint()
    changed = ScoringPlan(ScoreOptions(model="demo", max_image_bytes=LIMIT)).fingerprint()
    assert "max_image_bytes" not in default and changed["max_image_bytes"] == LIMIT
    assert ScoreOptions(max_image_bytes=LIMIT).scorer_kwargs()["max_image_bytes"] == LIMIT


def test_a_sidecar_that_is_a_pipe_or_a_device_is_that_rows_error(tmp_path):
    """An image folder's ``.txt`` sidecar that is a named pipe is never opened for reading (no hang), one that is
    a device never read; the rows beside them keep their prompts."""
    from clipgauge.sources.manifest import read_manifest

    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    (tmp_path / "a.txt").write_text("a red cube\n")
    os.mkfifo(tmp_path / "b.txt")
    os.symlink("/dev/zero", tmp_path / "c.txt")
    manifest = in_thread(lambda: read_manifest(tmp_path), tmp_path / "b.txt")
    rows = {Path(r.fields["image"]).stem: r for r in manifest.rows}
    assert rows["a"].prompt == "a red cube" and rows["a"].error is None
    assert rows["b"].error == "unreadable prompt: b.txt is a named pipe, not a regular file"
    assert rows["c"].error == "unreadable prompt: c.txt is a device, not a regular file"
