"""Parts are committed as the run goes: a part is written as soon as its last row is scored, the progress advances
every model batch, and a real SIGKILL loses at most the rows in flight (issue #20)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from clipgauge.cli import main
from clipgauge.pipeline.plan import ScoreOptions, ScoringPlan
from clipgauge.pipeline.score import score_rows, score_stream
from clipgauge.sinks.file import staging_folder
from clipgauge.sinks.sharded import list_parts
from clipgauge.sources.shards import SourceRow

ROWS, SHARD, BATCH = 384, 32, 32

DRIVER = """
import sys
from clipgauge.pipeline.plan import ScoreOptions
from clipgauge.runs import score

done = 0
def progress(total):
    def update(n):
        global done
        done += n
        print(done, flush=True)
    return update

score(sys.argv[1], sys.argv[2], ScoreOptions(model="demo", device="cpu", batch_size={batch}, num_workers=1,
      language=False), shard_size={shard}, progress=progress)
"""


def _manifest(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    lines = []
    for i in range(n):
        pixels = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
        lines.append(json.dumps({"image": f"{i:04d}.jpg", "prompt": f"a {['red', 'blue'][i % 2]} circle {i % 7}"}))
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "m.jsonl"


def test_sigkill_after_k_parts_keeps_k_minus_1_and_the_rerun_reads_none_of_their_images(tmp_path):
    manifest = _manifest(tmp_path / "data", ROWS)
    out = tmp_path / "results.jsonl"
    k = 4
    proc = subprocess.Popen([sys.executable, "-c", DRIVER.format(batch=BATCH, shard=SHARD), str(manifest), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    reports = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # the rows scored so far, reported by the run's progress callback
        reports.append(int(line))
        if reports[-1] >= k * SHARD or time.monotonic() > deadline:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-500:]
    assert reports and reports[0] <= BATCH, f"progress came first at {reports[:1]} rows, not after one batch"
    assert reports[-1] >= k * SHARD
    parts = list_parts(staging_folder(out))
    assert k - 1 <= len(parts) < ROWS // SHARD, f"{len(parts)} parts committed after {reports[-1]} rows scored"
    assert not out.exists()

    # the rerun must not read the committed parts' images: delete them (a read would be a 'file not found' row)
    for shard in parts:
        for i in range(shard * SHARD, (shard + 1) * SHARD):
            (tmp_path / "data" / f"{i:04d}.jpg").unlink()
    code = main(["score", str(manifest), "--model", "demo", "--device", "cpu", "--batch-size", str(BATCH),
                 "--workers", "1", "--shard-size", str(SHARD), "--no-language", "--out", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"] for r in rows] == [f"{i:04d}.jpg" for i in range(ROWS)]  # every row once, in order
    assert all(r["error"] is None for r in rows)
    assert not staging_folder(out).exists()


def _rows(n: int, folder: Path) -> list[SourceRow]:
    manifest = _manifest(folder, n)
    base = manifest.parent
    return [SourceRow(i, f"m:{i}", json.loads(line), image=base / json.loads(line)["image"],
                      prompt=json.loads(line)["prompt"]) for i, line in enumerate(manifest.read_text().splitlines())]


@pytest.mark.parametrize("two_models", [False, True])
def test_stream_groups_close_at_part_boundaries_and_equal_one_table(tmp_path, hf_model_dir, two_models):
    """Groups never span two parts, say when a part ends, report progress per batch, and give the rows' values of
    one table over all rows (with two models: each image decoded once, for both)."""
    rows = _rows(70, tmp_path / "d")
    metrics = ["clip", f"clip_iqa:model=hf:{hf_model_dir}"] if two_models else ["clip"]
    plan = ScoringPlan(ScoreOptions(metrics=metrics, model="demo", device="cpu", batch_size=8, num_workers=1,
                                    language=False)).load()
    assert plan.decode_once == two_models
    schema = plan.output_schema(pa.schema([pa.field("image", pa.string()), pa.field("prompt", pa.string())]))
    reported: list[int] = []
    got = list(score_stream(plan, rows, schema, group_rows=16, part=lambda r: r.index // 20,
                            progress=reported.append))
    shards = [[r.index // 20 for r in g.rows] for g, _ in got]
    assert all(len(set(s)) == 1 and len(s) <= 16 for s in shards)
    assert [g.closes for g, _ in got] == [False, True, False, True, False, True, True]
    assert sum(reported) == 70 and set(reported[:-1]) == {8}
    streamed = pa.concat_tables([t for _, t in got])
    whole = score_rows(plan, rows, schema)
    assert streamed.column("row_id").to_pylist() == list(range(70))
    for name in ("cosine", *(["clip_iqa"] if two_models else [])):
        np.testing.assert_allclose(streamed.column(name).to_numpy(), whole.column(name).to_numpy(), atol=1e-6)


@pytest.mark.parametrize("two_models", [False, True])
def test_rows_without_images_are_not_held_while_the_stream_runs(tmp_path, hf_model_dir, two_models):
    """A long run of rows whose images are missing is scored and let go group by group: the image streams, which
    read ahead only for images, never keep the rows they have not reached alive (memory stays bounded)."""
    import gc
    import weakref

    images = _rows(8, tmp_path / "d")
    made: list[weakref.ref] = []

    def rows():
        for i in range(1600):
            row = SourceRow(i, f"m:{i}", {"image": "gone.png", "prompt": "a cat"}, image=tmp_path / "gone.png",
                            prompt="a cat")
            made.append(weakref.ref(row))
            yield row
        for j, row in enumerate(images):
            row.index = 1600 + j
            yield row

    metrics = ["clip", f"clip_iqa:model=hf:{hf_model_dir}"] if two_models else ["clip"]
    plan = ScoringPlan(ScoreOptions(metrics=metrics, model="demo", device="cpu", batch_size=8, num_workers=1,
                                    language=False)).load()
    schema = plan.output_schema(pa.schema([pa.field("image", pa.string()), pa.field("prompt", pa.string())]))
    alive_at_1200 = None
    tables = []
    for group, table in score_stream(plan, rows(), schema, group_rows=16):
        tables.append(table)
        if group.rows[-1].index == 1199:
            del group
            gc.collect()
            alive_at_1200 = sum(ref() is not None for ref in made[:1100])
    assert alive_at_1200 is not None and alive_at_1200 < 50  # was 1100: every row held until an image came
    out = pa.concat_tables(tables)
    assert out.column("row_id").to_pylist() == list(range(1608))
    assert set(out.column("error").to_pylist()[:1600]) == {f"file not found: {tmp_path / 'gone.png'}"}
    assert out.column("error").to_pylist()[1600:] == [None] * 8
