"""Faults while writing (issue #20): a full disk, a read-only or vanished output folder, permission denied, a quota,
an I/O error. Each is one line on stderr naming the file and the cause, exit status 2, no traceback; the committed
parts are kept, no half-written file is left where a resume would trust it, no lock is left behind, and the same
command finishes the run once the cause is gone.

The faults are real where the OS can make them: a tmpfs of a few hundred KiB fills up (ENOSPC), a tmpfs mounted
read-only refuses writes (EROFS), a folder removed under the run is gone (ENOENT). Those tests need root and mount
permission (tests and CI run as root) and skip otherwise. Root bypasses file permissions, and quotas and I/O errors
need devices a test cannot make, so EACCES, EDQUOT and EIO are injected at the system call that reports them.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipgauge.atomic import AtomicFile, write_atomic
from clipgauge.cli import main
from clipgauge.errors import OutputError, UsageError
from clipgauge.sinks import read_results, write_results
from clipgauge.sinks.file import staging_folder
from clipgauge.sinks.sharded import ShardedRun, list_parts
from clipgauge.track import JSONLWriter
from clipgauge.track.result import TrackResult

ROWS, SHARD = 24, 4  # 6 parts
PAD = 15_000  # random bytes per row (base64: 20 kB, incompressible): a part is about 80 kB


# ----------------------------------------------------------------------------------------------- helpers
@contextmanager
def tmpfs(folder: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of *size* at *folder* (skips when mounting is not permitted); unmounted on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True,
                       capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs (needs root and mount permission): "
                    f"{getattr(exc, 'stderr', None) or exc}".strip())
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


def make_manifest(folder: Path, n: int = ROWS) -> Path:
    """*n* rows of small PNG images, each with a 20 kB ``pad`` column carried into the results (big parts)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    lines = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
        lines.append(json.dumps({"id": i, "image": f"{i:03d}.png", "prompt": f"a red circle {i}",
                                 "pad": base64.b64encode(rng.bytes(PAD)).decode()}))
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "m.jsonl"


def score_argv(manifest: Path, out: Path, *extra: object) -> list[str]:
    return [str(a) for a in ("score", manifest, "--model", "demo", "--device", "cpu", "--no-language",
                             "--batch-size", SHARD, "--workers", 1, "--out", out, "--shard-size", SHARD, *extra)]


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *needles: str) -> str:
    """The single ``clipgauge: error: …`` line of *err* (no traceback), containing every needle."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("clipgauge: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def forget_images(manifest: Path, shards) -> None:
    """Delete the images of *shards*: a rerun that read them again would give 'file not found' rows."""
    for shard in shards:
        for i in range(shard * SHARD, (shard + 1) * SHARD):
            (manifest.parent / f"{i:03d}.png").unlink()


def assert_whole_parts(folder: Path) -> dict[int, Path]:
    """Every part in *folder* reads back whole with its rows; no temporary file is left."""
    parts = list_parts(folder)
    for shard, path in parts.items():
        assert pq.read_table(path).column("row_id").to_pylist() == list(range(shard * SHARD, (shard + 1) * SHARD))
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    return parts


def assert_every_row_once(out: Path) -> None:
    rows = read_results(out)
    assert [r["id"] for r in rows] == list(range(ROWS))
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]][:3]


# ------------------------------------------------------------------------------------------ real faults
def test_full_disk_while_committing_parts_is_one_line_and_the_same_command_resumes(capsys, tmp_path):
    manifest = make_manifest(tmp_path / "data")
    with tmpfs(tmp_path / "disk", "256k") as disk:
        out = disk / "results.jsonl"
        staging = staging_folder(out)
        code, _, err = run(capsys, score_argv(manifest, out))
        assert code == 2
        line = one_error_line(err, f"cannot write {staging}/", ": No space left on device",
                              "(committed parts are kept; run the same command again to resume)")
        parts = assert_whole_parts(staging)
        assert 1 <= len(parts) < ROWS // SHARD, line
        assert not out.exists()

        remount(disk, "ro")  # read-only now: the rerun stops at once, the parts untouched
        code, _, err = run(capsys, score_argv(manifest, out))
        assert code == 2
        one_error_line(err, f"cannot write {staging}/", ": Read-only file system",
                       "(committed parts are kept; run the same command again to resume)")
        assert assert_whole_parts(staging) == parts

        remount(disk, "rw,size=64m")  # writable, space freed: the same command finishes the run
        forget_images(manifest, parts)
        code, stdout, err = run(capsys, score_argv(manifest, out))
        assert code == 0, err
        assert f"resumed: {ROWS // SHARD - len(parts)} new parts" in stdout
        assert_every_row_once(out)
        assert not staging.exists()


def test_full_disk_while_writing_the_results_file_keeps_the_parts(capsys, tmp_path):
    manifest = make_manifest(tmp_path / "data")
    with tmpfs(tmp_path / "disk", "720k") as disk:  # room for the parts (~520 kB), not for the file (~480 kB) too
        out = disk / "results.jsonl"
        code, _, err = run(capsys, score_argv(manifest, out))
        assert code == 2
        one_error_line(err, f"cannot write {out}: No space left on device", "run the same command again")
        assert len(assert_whole_parts(staging_folder(out))) == ROWS // SHARD
        assert sorted(p.name for p in disk.iterdir()) == [staging_folder(out).name]  # no half file, no .tmp

        remount(disk, "size=64m")
        forget_images(manifest, range(ROWS // SHARD))  # nothing is scored again
        code, stdout, err = run(capsys, score_argv(manifest, out))
        assert code == 0, err
        assert "resumed: 0 new parts" in stdout
        assert_every_row_once(out)


def test_read_only_output_is_one_line_and_the_same_command_runs_once_writable(capsys, tmp_path):
    manifest = make_manifest(tmp_path / "data")
    with tmpfs(tmp_path / "disk", "64m", read_only=True) as disk:
        out = disk / "run"  # a results folder
        code, _, err = run(capsys, score_argv(manifest, out))
        assert code == 2
        one_error_line(err, f"cannot write {out}: Read-only file system (nothing is written yet; run the same "
                            f"command again once it can be)")

        remount(disk, "rw")
        code, _, err = run(capsys, score_argv(manifest, out))
        assert code == 0, err
        assert_every_row_once(out)

        remount(disk, "ro")  # every other output of a finished run: the same one line
        for argv, target in (
            (["report", str(out), "--out", str(disk / "report.html")], disk / "report.html"),
            (["filter", str(out), "--min-score", "-1", "--out", str(disk / "kept.parquet")], disk / "kept.parquet"),
            (["filter", str(out), "--min-score", "-1", "--out", str(disk / "kept")], disk / "kept"),
        ):
            code, _, err = run(capsys, argv)
            assert code == 2, err
            one_error_line(err, f"cannot write {target}", "Read-only file system")
        with pytest.raises(OutputError, match="Read-only file system"):
            write_results(disk / "prompts.jsonl", [{"prompt": "a cat"}], ["prompt"])  # prompts --out
        with pytest.raises(OutputError, match=f"cannot write {disk / 'track.jsonl'}: Read-only file system"):
            JSONLWriter(disk / "track.jsonl")


def test_a_folder_that_vanishes_between_commits_is_not_made_again(capsys, tmp_path, monkeypatch):
    """Today the next part silently made the folder again and the run failed only at its end, the earlier parts
    lost; now the next write says the folder is gone, and the same command starts the run over."""
    manifest = make_manifest(tmp_path / "data")
    out = tmp_path / "results.jsonl"
    staging = staging_folder(out)
    commit = ShardedRun.commit

    def commit_after_the_folder_is_removed(self, shard, table):
        if shard == 2:
            shutil.rmtree(self.folder)  # another process (a clean-up job, a user) removes the run's folder
        return commit(self, shard, table)

    monkeypatch.setattr(ShardedRun, "commit", commit_after_the_folder_is_removed)
    code, _, err = run(capsys, score_argv(manifest, out))
    assert code == 2
    one_error_line(err, f"cannot write {staging / 'part-00002.parquet'}: No such file or directory",
                   f"the folder {staging} no longer exists", "the same command starts the run over")
    assert not staging.exists() and not out.exists()

    monkeypatch.setattr(ShardedRun, "commit", commit)
    code, _, err = run(capsys, score_argv(manifest, out))
    assert code == 0, err
    assert_every_row_once(out)


def test_a_full_disk_while_tracking_never_leaves_half_a_line(tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        writer = JSONLWriter(disk / "track.jsonl")
        metrics = {f"clip/prompt/p{j}": 0.25 for j in range(300)}  # about 9 kB a line
        with pytest.raises(OutputError, match=f"cannot write {disk / 'track.jsonl'}: No space left on device"):
            for step in range(100):
                writer.write(TrackResult(step=step, metrics=metrics, per_prompt={}))
        writer.close()
        text = (disk / "track.jsonl").read_text()
        assert text.endswith("\n")
        assert [json.loads(line)["step"] for line in text.splitlines()] == list(range(len(text.splitlines())))


def test_an_unwrapped_write_fault_of_a_named_file_is_still_one_line(capsys, tmp_path, monkeypatch):
    """The last resort: an OSError of a named file that no writer wrapped (the demo's files) is one line too. Any
    other OSError is a bug and keeps its traceback."""
    with tmpfs(tmp_path / "disk", "1m", read_only=True) as disk:
        code, _, err = run(capsys, ["demo", "--out", str(disk / "demo"), "--no-report"])
    assert code == 2
    one_error_line(err, f"{disk / 'demo'}", "Read-only file system")

    import clipgauge.cli as cli

    def broken(*args, **kwargs):
        raise OSError("something that is not a file's fault")

    monkeypatch.setattr(cli.cli, "main", broken)
    with pytest.raises(OSError, match="not a file's fault"):
        main(["score"])


@pytest.mark.slow  # a Ray instance of its own: about a minute on 2 CPUs
def test_the_ray_engine_gives_the_same_line_and_resumes(capsys, tmp_path):
    ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    manifest = make_manifest(tmp_path / "data")
    argv = ["--engine", "ray", "--ray-workers", "1", "--cpus-per-worker", "0.5"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tmpfs(tmp_path / "disk", "256k") as disk:
            out = disk / "run"
            code, _, err = run(capsys, score_argv(manifest, out, *argv))
            assert code == 2
            one_error_line(err, f"cannot write {out}/", ": No space left on device",
                           "(committed parts are kept; run the same command again to resume)")
            parts = assert_whole_parts(out)
            assert 1 <= len(parts) < ROWS // SHARD

            remount(disk, "size=64m")
            forget_images(manifest, parts)
            code, stdout, err = run(capsys, score_argv(manifest, out, *argv))
            assert code == 0, err
            assert f"resumed: {ROWS // SHARD - len(parts)} new parts" in stdout
            assert_every_row_once(out)
    finally:
        ray.shutdown()


# -------------------------------------------------------------------------------------- injected faults
def _fail_os_open(monkeypatch, code: int, name: str) -> None:
    """``os.open`` of a file whose name starts with *name* fails with *code* (what EACCES looks like to a non-root
    user: root is let through by the permission bits)."""
    real = os.open

    def fake_open(path, flags, *args, **kwargs):
        if os.path.basename(os.fspath(path)).startswith(name):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def _fail_fsync(monkeypatch, code: int, name: str) -> None:
    """``os.fsync`` of a file whose name starts with *name* fails with *code*: a quota or an I/O error the file
    system reports only when the data is flushed."""
    real = os.fsync

    def fake_fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(name):
            raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fake_fsync)


@pytest.mark.parametrize(("inject", "code"), [(_fail_os_open, errno.EACCES), (_fail_fsync, errno.EDQUOT),
                                              (_fail_fsync, errno.EIO)], ids=["EACCES", "EDQUOT", "EIO"])
def test_injected_faults_while_committing_a_part(capsys, tmp_path, monkeypatch, inject, code):
    """A part the OS could not write is never committed (today an fsync error was ignored and the part, maybe not
    on disk, was trusted by every resume)."""
    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    manifest = make_manifest(tmp_path / "data")
    out = tmp_path / "out"
    inject(monkeypatch, code, ".part-00003.parquet.")
    status, _, err = run(capsys, score_argv(manifest, out))
    assert status == 2
    one_error_line(err, f"cannot write {out / 'part-00003.parquet'}: {os.strerror(code)}",
                   "(committed parts are kept; run the same command again to resume)")
    parts = assert_whole_parts(out)
    assert sorted(parts) == [0, 1, 2]

    monkeypatch.undo()
    forget_images(manifest, parts)
    status, stdout, err = run(capsys, score_argv(manifest, out))
    assert status == 0, err
    assert "resumed: 3 new parts" in stdout
    assert_every_row_once(out)


def test_atomic_writes_raise_output_error_and_keep_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    write_atomic(target, "old")
    _fail_os_open(monkeypatch, errno.EACCES, ".out.json.")
    with pytest.raises(OutputError) as caught:
        write_atomic(target, "new")
    error = caught.value
    assert str(error) == f"cannot write {target}: Permission denied"
    assert isinstance(error, UsageError) and isinstance(error, OSError)  # one line in the CLI; still an OSError
    assert error.errno == errno.EACCES and error.filename == str(target)
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with pytest.raises(OutputError, match="cannot write .*x.bin: No space left on device"), \
            AtomicFile(tmp_path / "x.bin") as t:
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert not os.path.exists(t.tmp)
