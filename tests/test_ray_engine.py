"""The Ray engine on a real local Ray instance (2 CPUs, 2 scoring actors): the local engine's scores, exactly once.

One Ray instance for the whole module; each test runs one Ray Data job (actors load the tiny model).
"""

from __future__ import annotations

import shutil
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import assert_rows_close, reference_hf_cosines

from clipgauge.cli import main
from clipgauge.sinks.sharded import list_parts
from test_sources_shards import add_member, write_parquet, write_wds

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")

RAY = ["--engine", "ray", "--ray-workers", 2, "--cpus-per-worker", 0.5]


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same_results(local: list[dict], distributed: list[dict]) -> None:
    """Every row once, in order, with the same values; the actors batch rows differently from the local
    engine, so floats agree within 1e-6 (float16 embeddings within their own precision)."""
    assert [r["row_id"] for r in distributed] == [r["row_id"] for r in local] == list(range(len(local)))
    assert_rows_close(distributed, local, atol_for={"image_embedding": 1e-3, "text_embedding": 1e-3})


def test_ray_webdataset_equals_local(capsys, hf_model_dir, tmp_path):
    expected = write_wds(tmp_path / "wds", tars=3, per_tar=6)
    with tarfile.open(tmp_path / "wds" / "00003.tar", "w") as tar:
        add_member(tar, "bad.jpg", b"not an image")
        add_member(tar, "bad.txt", b"x")
        add_member(tar, "../evil.jpg", b"x")
    common = ["score", tmp_path / "wds", "--model", f"hf:{hf_model_dir}", "--shard-size", 4, "--device", "cpu",
              "--batch-size", 4]
    code, _, _ = run(capsys, *common, "--out", tmp_path / "local")
    assert code == 1
    code, out, err = run(capsys, *common, "--out", tmp_path / "ray", *RAY)
    assert code == 1 and "2 of 20 rows could not be scored" in err and "5 parts" in out
    assert ray.is_initialized()  # the engine joined this instance and left it running
    local, distributed = pq.read_table(tmp_path / "local").to_pylist(), pq.read_table(tmp_path / "ray").to_pylist()
    assert_same_results(local, distributed)
    assert "unsafe tar member" in distributed[19]["error"]
    ref = reference_hf_cosines(hf_model_dir, _pil(expected[:3]),
                               [e["prompt"] for e in expected[:3]])
    np.testing.assert_allclose([r["cosine"] for r in distributed[:3]], ref, atol=1e-4)


def test_ray_finishes_a_parquet_run_the_local_engine_started(capsys, hf_model_dir, tmp_path):
    write_parquet(tmp_path / "p" / "a.parquet", 0, 11, broken=(2,))
    write_parquet(tmp_path / "p" / "b.parquet", 11, 7)
    common = ["score", tmp_path / "p", "--model", f"hf:{hf_model_dir}", "--shard-size", 4, "--device", "cpu",
              "--save-embeddings"]
    code, _, _ = run(capsys, *common, "--out", tmp_path / "local")
    assert code == 1
    # a run the local engine left unfinished (parts 1 and 3 missing), finished by Ray
    shutil.copytree(tmp_path / "local", tmp_path / "mixed")
    for k in (1, 3):
        list_parts(tmp_path / "mixed")[k].unlink()
    (tmp_path / "mixed" / "_SUCCESS").unlink()
    code, out, _ = run(capsys, *common, "--out", tmp_path / "mixed", *RAY)
    assert code == 1 and "resumed: 2 new parts" in out
    assert sorted(list_parts(tmp_path / "mixed")) == list(range(5))
    local, mixed = pq.read_table(tmp_path / "local"), pq.read_table(tmp_path / "mixed")
    assert_same_results(local.to_pylist(), mixed.to_pylist())
    for column in ("image_embedding", "text_embedding"):
        a = np.array([np.nan * np.ones(16) if v is None else v for v in local.column(column).to_pylist()], float)
        b = np.array([np.nan * np.ones(16) if v is None else v for v in mixed.column(column).to_pylist()], float)
        np.testing.assert_allclose(a, b, atol=1e-3, equal_nan=True)


def test_ray_refuses_more_actors_than_the_cluster_has(capsys, hf_model_dir, tmp_path):
    write_wds(tmp_path / "wds", tars=1, per_tar=2)
    code, _, err = run(capsys, "score", tmp_path / "wds", "--model", f"hf:{hf_model_dir}", "--out", tmp_path / "o",
                       "--engine", "ray", "--ray-workers", 3, "--device", "cpu")
    assert code == 2 and "leave no CPU" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "score", tmp_path / "wds", "--model", f"hf:{hf_model_dir}", "--out", tmp_path / "o",
                       "--engine", "ray", "--num-gpus-per-worker", 1, "--device", "cpu")
    assert code == 2 and "need 1 GPUs; the cluster has 0" in err


def _pil(expected):
    import io

    from PIL import Image

    return [Image.open(io.BytesIO(e["image"])).convert("RGB") for e in expected]
