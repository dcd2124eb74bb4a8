"""Sharded, resumable runs with the local engine: exactly-once output after a real kill -9, refusal of
incompatible runs, embeddings export, and ``clipgauge filter`` over a results folder."""

from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_rows_close, reference_hf_cosines, sigkill_when
from PIL import Image

from clipgauge.cli import main
from clipgauge.sinks import read_results
from clipgauge.sinks.sharded import list_parts
from clipgauge.sources.detect import open_source
from clipgauge.stats.filtering import filter_rows
from test_sources_shards import add_member, write_parquet, write_wds

EXE = os.path.join(os.path.dirname(sys.executable), "clipgauge")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def table(folder: Path) -> list[dict]:
    return pq.read_table(folder).to_pylist()


@pytest.fixture()
def wds(tmp_path) -> tuple[Path, list[dict]]:
    """3 tars × 5 samples, plus a 4th tar holding one undecodable image: 16 rows."""
    expected = write_wds(tmp_path / "wds", tars=3, per_tar=5)
    with tarfile.open(tmp_path / "wds" / "00003.tar", "w") as tar:
        add_member(tar, "bad.jpg", b"not an image at all")
        add_member(tar, "bad.txt", b"a broken picture")
    return tmp_path / "wds", expected


def test_folder_out_equals_single_file_out(capsys, hf_model_dir, image_set, tmp_path):
    folder, rows = image_set
    code, _, _ = run(capsys, "score", folder / "manifest.jsonl", "--model", f"hf:{hf_model_dir}", "--out",
                     tmp_path / "one.jsonl", "--device", "cpu")
    assert code == 0
    code, out, _ = run(capsys, "score", folder / "manifest.jsonl", "--model", f"hf:{hf_model_dir}", "--out",
                       tmp_path / "sharded", "--shard-size", 3, "--device", "cpu")
    assert code == 0 and "3 parts" in out
    one, sharded = read_results(tmp_path / "one.jsonl"), table(tmp_path / "sharded")
    assert [p.name for p in list_parts(tmp_path / "sharded").values()] == [f"part-0000{i}.parquet" for i in range(3)]
    assert [r["row_id"] for r in sharded] == list(range(8))
    assert [r["row_source"] for r in sharded] == [f"manifest.jsonl:{i}" for i in range(8)]
    assert list(sharded[0])[2:] == list(one[0])  # the manifest's columns, then the results, as for --out FILE
    # equal, up to the float rounding of a different batch split (shards of 3)
    assert_rows_close([{k: v for k, v in r.items() if k not in ("row_id", "row_source")} for r in sharded], one)
    s1 = json.loads((tmp_path / "one.jsonl.summary.json").read_text())
    s2 = json.loads((tmp_path / "sharded" / "_summary.json").read_text())
    assert s2["scales"]["cosine"]["mean"] == pytest.approx(s1["scales"]["cosine"]["mean"], abs=1e-6)
    assert s1["rows"] == s2["rows"] == 8 and s1["scored"] == s2["scored"]
    assert s2["provenance"]["model"]["weights_sha256"] == s1["provenance"]["model"]["weights_sha256"]
    assert (tmp_path / "sharded" / "_SUCCESS").exists()


def test_webdataset_scores_match_scorer_and_transformers(capsys, hf_model_dir, hf_scorer, wds, tmp_path):
    folder, expected = wds
    code, _, err = run(capsys, "score", str(folder / "{00000..00003}.tar"), "--model", f"hf:{hf_model_dir}",
                       "--out", tmp_path / "out", "--shard-size", 4, "--device", "cpu")
    assert code == 1 and "1 of 16 rows could not be scored" in err and "not an image" in err
    got = table(tmp_path / "out")
    assert [r["row_id"] for r in got] == list(range(16))
    assert [r["key"] for r in got] == [e["key"] for e in expected] + ["bad"]
    direct = hf_scorer.score_pairs([e["image"] for e in expected], [e["prompt"] for e in expected])
    np.testing.assert_allclose([r["cosine"] for r in got[:15]], direct.cosine, atol=1e-6, rtol=0)
    assert got[15]["cosine"] is None and got[15]["score"] is None and got[15]["error"]
    pil = [Image.open(io.BytesIO(e["image"])).convert("RGB") for e in expected[:4]]
    ref = reference_hf_cosines(hf_model_dir, pil, [e["prompt"] for e in expected[:4]])
    np.testing.assert_allclose([r["cosine"] for r in got[:4]], ref, atol=1e-4)


def test_corrupt_shards_are_rows_with_errors(capsys, hf_model_dir, tmp_path):
    from test_sources_shards import _corrupt_inputs

    pattern = _corrupt_inputs(tmp_path / "wds")
    n = sum(open_source(str(pattern)).count_rows())
    code, _, err = run(capsys, "score", str(pattern), "--model", f"hf:{hf_model_dir}", "--out", tmp_path / "out",
                       "--shard-size", 4, "--device", "cpu")
    assert code == 1 and "could not be scored" in err and "Traceback" not in err
    got = table(tmp_path / "out")
    assert [r["row_id"] for r in got] == list(range(n))
    errors = [r["error"] for r in got if r["error"]]
    assert any("corrupt shard 00002.tar" in e for e in errors) and "shard not found: 00005.tar" in errors
    assert sum(r["cosine"] is not None for r in got) == 3 + 1 + 1 + 3  # the readable samples


def _cmd(folder: Path, out: Path, model_dir: Path) -> list[str]:
    # batch size 1: the local engine scores 16 rows (4 shards) at a time, then commits those 4
    return [EXE, "score", str(folder), "--model", f"hf:{model_dir}", "--out", str(out), "--shard-size", "4",
            "--batch-size", "1", "--workers", "1", "--device", "cpu"]


def test_kill_9_mid_run_then_rerun_gives_every_row_once(capsys, hf_model_dir, tmp_path):
    """A real SIGKILL of a running `clipgauge score`; the same command then finishes the run."""
    write_wds(tmp_path / "wds", tars=3, per_tar=16, size=(256, 256))  # 48 rows, 12 shards
    out = tmp_path / "out"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(_cmd(tmp_path / "wds", out, hf_model_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    sigkill_when(proc, lambda: out.is_dir() and bool(list_parts(out)))
    done_before = set(list_parts(out))
    assert 1 <= len(done_before) < 12, "the run was not killed mid-way"
    assert not (out / "_SUCCESS").exists()
    mtimes = {k: p.stat().st_mtime_ns for k, p in list_parts(out).items()}

    again = subprocess.run(_cmd(tmp_path / "wds", out, hf_model_dir), capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resumed: {12 - len(done_before)} new parts" in again.stdout
    parts = list_parts(out)
    assert sorted(parts) == list(range(12)) and (out / "_SUCCESS").exists()
    assert all(parts[k].stat().st_mtime_ns == mtimes[k] for k in done_before)  # committed parts untouched
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    code, _, _ = run(capsys, "score", tmp_path / "wds", "--model", f"hf:{hf_model_dir}", "--out",
                     tmp_path / "clean", "--shard-size", 4, "--batch-size", 1, "--workers", 1, "--device", "cpu")
    assert code == 0
    resumed, clean = table(out), table(tmp_path / "clean")
    ids = [r["row_id"] for r in resumed]
    assert ids == list(range(48)) and len(set(r["row_source"] for r in resumed)) == 48  # once each, none lost
    assert [r["row_source"] for r in resumed] == [r["row_source"] for r in clean]
    np.testing.assert_allclose([r["cosine"] for r in resumed], [r["cosine"] for r in clean], atol=1e-6, rtol=0)
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["rows"] == summary["scored"] == 48 and summary["run"]["resumed_from_shards"] == len(done_before)


def test_resume_fills_lost_parts_and_skips_the_rest(capsys, hf_model_dir, wds, tmp_path):
    folder, _ = wds
    out = tmp_path / "out"
    argv = ["score", folder, "--model", f"hf:{hf_model_dir}", "--out", out, "--shard-size", 3, "--device", "cpu"]
    assert run(capsys, *argv)[0] == 1
    first = table(out)
    for k in (1, 3):
        list_parts(out)[k].unlink()
    (out / ".part-00002.abcd.tmp").write_bytes(b"half a part")
    (out / "_SUCCESS").unlink()
    code, stdout, _ = run(capsys, *argv)
    assert code == 1 and "resumed: 2 new parts" in stdout
    resumed = table(out)
    # parts 1 and 3 were scored again in other batches (6 rows together, not each with its neighbours):
    # the same rows and values, their scores only within the 1e-6 of another batch split
    assert_rows_close(resumed, first)
    assert not (out / ".part-00002.abcd.tmp").exists()
    code, stdout, _ = run(capsys, *argv)  # complete: nothing to do, same summary
    assert code == 1 and "resumed: 0 new parts" in stdout
    assert table(out) == resumed  # exact: no part was rewritten, the same files are read back


def test_incompatible_runs_are_refused(capsys, hf_model_dir, wds, tmp_path):
    from tiny_clip import save_tiny_hf_clip

    folder, _ = wds
    out = tmp_path / "out"
    base = ["score", folder, "--out", out, "--shard-size", 5, "--device", "cpu"]
    assert run(capsys, *base, "--model", f"hf:{hf_model_dir}")[0] == 1
    sha = json.loads((out / "_run.json").read_text())["fingerprint"]["model_weights_sha256"]
    other = save_tiny_hf_clip(tmp_path / "other", seed=1)
    for extra, what in [(["--model", f"hf:{other}"], "model_weights_sha256"),
                        (["--model", f"hf:{hf_model_dir}", "--prompt-prefix", "a photo of "], "prompt_prefix"),
                        (["--model", f"hf:{hf_model_dir}", "--scale", "clip-s"], "scale"),
                        (["--model", f"hf:{hf_model_dir}", "--save-embeddings"], "save_embeddings")]:
        code, _, err = run(capsys, *base, *extra)
        assert code == 2 and what in err and "--no-resume" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run(capsys, "score", folder, "--out", out, "--shard-size", 4, "--device", "cpu", "--model",
                       f"hf:{hf_model_dir}")
    assert code == 2 and "shard_size: 5 → 4" in err
    # --no-resume starts over (the old parts go)
    code, stdout, _ = run(capsys, *base, "--model", f"hf:{other}", "--no-resume")
    assert code == 1 and "4 parts" in stdout
    assert json.loads((out / "_run.json").read_text())["fingerprint"]["model_weights_sha256"] != sha
    # a folder that is not a run is never touched; neither is one another run is writing to
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code, _, err = run(capsys, *base[:3], tmp_path / "mine", "--model", f"hf:{hf_model_dir}")
    assert code == 2 and "not empty" in err and (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    with open(out / "_run.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        code, _, err = run(capsys, *base, "--model", f"hf:{other}")
    assert code == 2 and "another clipgauge run is writing" in err


def test_cli_usage_errors(capsys, hf_model_dir, wds, image_set, tmp_path):
    folder, _ = wds
    manifest = image_set[0] / "manifest.jsonl"
    model = ["--model", f"hf:{hf_model_dir}"]
    # (shards into one results file, Ray into a file and --strict into a folder are allowed since the one pipeline)
    for argv, message in [
        (["score", folder, "--out", tmp_path / "r.xlsx", *model], "unsupported output format"),
        (["score", manifest, "--out", tmp_path / "d", "--metric", "clip:bad", *model], "not KEY=VALUE"),
        (["score", manifest, "--out", tmp_path / "d", "--reference-text", "nope", *model], "no 'nope' column"),
        (["score", str(tmp_path / "nothing" / "{0..3}.tar"), "--out", tmp_path / "d", *model], "none of the 4 files"),
        (["score", folder, "--out", tmp_path / "d", "--shard-size", 0, *model], "shard-size"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_save_embeddings_round_trip(capsys, hf_model_dir, hf_scorer, wds, tmp_path):
    folder, expected = wds
    out = tmp_path / "out"
    code, _, _ = run(capsys, "score", folder, "--model", f"hf:{hf_model_dir}", "--out", out, "--shard-size", 6,
                     "--device", "cpu", "--save-embeddings")
    assert code == 1
    t = pq.read_table(out)
    assert t.schema.field("image_embedding").type == pa.list_(pa.float16(), 16)
    img = np.stack(t.column("image_embedding").to_pylist()[:15]).astype(np.float32)
    txt = np.stack(t.column("text_embedding").to_pylist()[:15]).astype(np.float32)
    np.testing.assert_allclose(img, hf_scorer.embed_images([e["image"] for e in expected]), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(txt, hf_scorer.embed_texts([e["prompt"] for e in expected]), atol=1e-3, rtol=1e-3)
    # later runs need no model: cosines from the stored embeddings agree within float16 precision
    np.testing.assert_allclose((img * txt).sum(1), t.column("cosine").to_numpy()[:15], atol=2e-3)
    bad = t.slice(15).to_pylist()[0]
    assert bad["image_embedding"] is None and bad["text_embedding"] is not None  # the prompt was fine


def test_filter_a_results_folder(capsys, hf_model_dir, tmp_path):
    write_parquet(tmp_path / "p" / "a.parquet", 0, 12, broken=(4,))
    write_parquet(tmp_path / "p" / "b.parquet", 12, 9)
    out = tmp_path / "out"
    assert run(capsys, "score", tmp_path / "p", "--model", f"hf:{hf_model_dir}", "--out", out, "--shard-size", 5,
               "--device", "cpu")[0] == 1
    records = table(out)
    for opts in (["--min-score", "-0.3"], ["--top-fraction", "0.3"], ["--top-fraction", "0.5", "--scale", "clip-s"]):
        kw = {"min_score": float(opts[1])} if opts[0] == "--min-score" else {"top_fraction": float(opts[1])}
        scale = opts[3] if len(opts) > 2 else "cosine"
        want = filter_rows(records, scale=scale, **kw)
        target = tmp_path / f"kept{len(list(tmp_path.iterdir()))}.parquet"
        code, _, _ = run(capsys, "filter", out, *opts, "--out", target, "--json", tmp_path / "f.json")
        assert code == 0
        doc = json.loads((tmp_path / "f.json").read_text())
        assert doc["kept"] == want.n_kept and doc["unscored"] == 1 and doc["rows"] == 21
        assert doc["threshold"] == pytest.approx(want.threshold)
        kept = pq.read_table(target).to_pylist()
        assert [r["row_id"] for r in kept] == [records[i]["row_id"] for i in want.kept]
    # a folder of parts, and WebDataset tars with the original images (re-read from the run's input)
    code, _, _ = run(capsys, "filter", out, "--top-fraction", "0.5", "--out", tmp_path / "kf", "--dropped",
                     tmp_path / "dropped.parquet")
    assert code == 0
    kept_ids = [r["row_id"] for r in pq.read_table(tmp_path / "kf").to_pylist()]
    dropped_ids = [r["row_id"] for r in pq.read_table(tmp_path / "dropped.parquet").to_pylist()]
    assert sorted(kept_ids + dropped_ids) == list(range(21)) and len(kept_ids) == 10
    code, _, _ = run(capsys, "filter", out, "--top-fraction", "0.5", "--out", tmp_path / "wds" / "%05d.tar")
    assert code == 0
    back = list(open_source(tmp_path / "wds").rows())
    originals = {r.index: r for r in open_source(tmp_path / "p").rows()}
    assert [int(r.fields["key"]) for r in back] == kept_ids
    assert all(r.image == originals[int(r.fields["key"])].image for r in back)
    assert all(r.prompt == originals[int(r.fields["key"])].prompt.strip() for r in back)  # .txt is stripped
    assert all(json.loads(r.fields["json"])["cosine"] is not None for r in back)
    # an unfinished run is refused
    (out / "_SUCCESS").unlink()
    code, _, err = run(capsys, "filter", out, "--min-score", "0", "--out", tmp_path / "x.parquet")
    assert code == 2 and "not complete" in err


def test_score_without_ray_engine_never_imports_ray(hf_model_dir, wds, tmp_path):
    folder, _ = wds
    code = (
        "import sys, clipgauge; assert 'ray' not in sys.modules\n"
        "from clipgauge.cli import main\n"
        f"c = main(['score', {str(folder)!r}, '--model', 'hf:{hf_model_dir}', '--out', {str(tmp_path / 'o')!r},"
        " '--device', 'cpu'])\n"
        "print(c, sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "1 []"
