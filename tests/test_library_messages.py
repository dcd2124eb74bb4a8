"""Library errors speak of the library, not of command-line flags; the CLI wording rides along as
``UsageError.cli`` and is what ``clipgauge`` prints (one line, no traceback)."""

from __future__ import annotations

import json
import re
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipgauge.cli import main
from clipgauge.errors import UsageError

FLAG = re.compile(r"(^|\s)--[a-z]")


def _raises(call, *args, **kwargs) -> UsageError:
    with pytest.raises(UsageError) as info:
        call(*args, **kwargs)
    return info.value


def _check(exc: UsageError, flag: str) -> None:
    assert not FLAG.search(str(exc)), f"library message names a flag: {exc}"
    assert exc.cli is not None and flag in exc.cli, exc.cli


@pytest.fixture()
def results(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"prompt_id": i, "image": f"{i}.png", "prompt": "p", "cosine": 0.1 * i,
                                        "error": None}) + "\n" for i in range(3)))
    return path


def test_report_messages(results, tmp_path, capsys):
    from clipgauge.report.build import ReportOptions, build_report

    _check(_raises(ReportOptions(max_images=-1).check), "--max-images")
    _check(_raises(ReportOptions(thumb_size=8).check), "--thumb-size")
    _check(_raises(build_report, [results], tmp_path), "--out")
    _check(_raises(build_report, [results], tmp_path / "p.html", ReportOptions(sweep_param="steps")),
           "--sweep-param")
    assert main(["report", str(results), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"clipgauge: error: --out {tmp_path} is a folder; give a file name such as report.html"


def test_evaluation_report_message(tmp_path):
    from clipgauge.report.evaluation import _write

    _check(_raises(_write, tmp_path, "title", []), "--report")


def test_backbones_message():
    from clipgauge.backbones import backbone_metrics

    _check(_raises(backbone_metrics, ["demo"]), "--model")


def test_stored_gallery_message(tmp_path):
    from clipgauge.zeroshot.gallery import StoredGallery

    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"row_id": [0], "image": ["a.png"], "error": pa.array([None], pa.string())}), path)
    _check(_raises(StoredGallery, path), "--save-embeddings")


class _Cluster:
    """What ``_plan_actors`` asks of the ``ray`` module: the cluster's resources."""

    def __init__(self, cpus: float, gpus: float) -> None:
        self.resources = {"CPU": cpus, "GPU": gpus}

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_ray_messages(monkeypatch):
    from clipgauge.engines.options import RayOptions
    from clipgauge.engines.ray_engine import _plan_actors, run_ray

    _check(_raises(_plan_actors, _Cluster(4, 0), RayOptions(cpus_per_worker=-1)), "--cpus-per-worker")
    _check(_raises(_plan_actors, _Cluster(4, 1), RayOptions(workers=2, gpus_per_worker=1)), "--ray-workers")
    _check(_raises(_plan_actors, _Cluster(2, 0), RayOptions(workers=2, cpus_per_worker=1)), "--ray-workers")
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    _check(_raises(run_ray, None, None, None, None), "--engine ray")
