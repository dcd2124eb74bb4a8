"""``classify`` on the Ray engine: the zeroshot metric (labels and templates as lists) travels to the actors, and
WebDataset samples without captions are classified, with the local engine's results."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import random_rgb

from clipgauge.engines import RayOptions
from clipgauge.pipeline.plan import ScoreOptions
from clipgauge.zeroshot.classify import classify

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")

pytestmark = pytest.mark.slow  # a Ray instance of its own: about a minute on 2 CPUs


def test_ray_classifies_captionless_webdataset_like_local(tmp_path, hf_model_dir) -> None:
    (tmp_path / "wds").mkdir()
    for t in range(2):
        with tarfile.open(tmp_path / "wds" / f"{t:05d}.tar", "w") as tar:
            for i in range(5):
                buf = io.BytesIO()
                random_rgb(10 * t + i).save(buf, "PNG")
                info = tarfile.TarInfo(f"{t}_{i:03d}.png")
                info.size = len(buf.getvalue())
                tar.addfile(info, io.BytesIO(buf.getvalue()))
    common = dict(templates=["a photo of a {}.", "a {}"], model=f"hf:{hf_model_dir}", shard_size=4,
                  options=ScoreOptions(device="cpu", batch_size=3))
    classify(tmp_path / "wds", "cat,dog,bird", out=tmp_path / "local", **common)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        classify(tmp_path / "wds", "cat,dog,bird", out=tmp_path / "ray", engine="ray",
                 ray=RayOptions(workers=2, cpus_per_worker=0.5), **common)
    finally:
        ray.shutdown()
    local, distributed = pq.read_table(tmp_path / "local").to_pylist(), pq.read_table(tmp_path / "ray").to_pylist()
    assert len(local) == len(distributed) == 10 and all(r["error"] is None for r in distributed)
    assert [r["label"] for r in distributed] == [r["label"] for r in local]
    np.testing.assert_allclose([r["probability"] for r in distributed], [r["probability"] for r in local], atol=1e-6)
