"""The ``aesthetic`` metric (LAION aesthetic predictor) against the published recipe, computed here without
clipgauge: transformers ``CLIPModel.get_image_features`` on ``CLIPImageProcessorPil`` pixels, L2-normalised, then
the published head as the original code builds it (``nn.Sequential`` under ``layers``, or ``nn.Linear``) loaded
with ``load_state_dict`` from the file.

The heads are random, saved with ``torch.save(state_dict)`` in each published key layout. Their input width
follows the tiny CLIP's projection width (16, or 12 for a second "ViT-B-like" backbone) instead of 768 / 512; the
key names, nesting and hidden widths (1024/128/64/16) are the published ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image

from clipgauge.cli import main
from clipgauge.metrics.aesthetic import Aesthetic
from clipgauge.metrics.aesthetic_head import DEFAULT_HEAD_FILE, DEFAULT_HEAD_REPO, DEMO_HEAD
from clipgauge.pipeline.plan import ScoreOptions, ScoringPlan

HIDDEN = (1024, 128, 64, 16)
V2_LINEAR = (0, 2, 4, 6, 7)
V2_RELU = (0, 3, 6, 9, 11)


# ------------------------------------------------------------------------------------ heads in published formats
def v2_state(width: int, indices: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dims = (width, *HIDDEN, 1)
    state = {}
    for j, i in enumerate(indices):
        fan_in = dims[j]
        state[f"layers.{i}.weight"] = torch.randn(dims[j + 1], fan_in, generator=g) / fan_in ** 0.5
        state[f"layers.{i}.bias"] = torch.randn(dims[j + 1], generator=g) * 0.1
    state[f"layers.{indices[-1]}.bias"] += 5.0  # scores around 5, as the published heads give
    return state


def v1_state(width: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"weight": torch.randn(1, width, generator=g), "bias": torch.tensor([5.0])}


def save_head(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


class PublishedMLP(torch.nn.Module):
    """The MLP of improved-aesthetic-predictor (simple_inference.py / avaclipmlp_inf_wds-relu.py), written out."""

    def __init__(self, width: int, relu: bool) -> None:
        super().__init__()
        act = (lambda: [torch.nn.ReLU()]) if relu else (lambda: [])
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(width, 1024), *act(), torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128), *act(), torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64), *act(), torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16), *act(),
            torch.nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def reference_scores(model_dir: Path, images: list[Path], head: Path, kind: str) -> np.ndarray:
    from transformers import CLIPImageProcessorPil, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    width = model.config.projection_dim
    mlp = torch.nn.Linear(width, 1) if kind == "v1-linear" else PublishedMLP(width, relu=kind == "v2-relu")
    mlp.load_state_dict(torch.load(head, map_location="cpu"))  # strict: the key names must be the published ones
    mlp.eval()
    with torch.no_grad():
        pixels = processor(images=[Image.open(p).convert("RGB") for p in images], return_tensors="pt")["pixel_values"]
        features = model.get_image_features(pixel_values=pixels).pooler_output
        features = features / features.norm(dim=-1, keepdim=True)
        return mlp(features)[:, 0].double().numpy()


# ------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, Path]:
    """Two tiny CLIPs of different embedding widths: 'l14' (16 wide) and 'b32' (12 wide)."""
    from tiny_clip import save_tiny_hf_clip

    root = tmp_path_factory.mktemp("aesthetic_clips")
    return {"l14": save_tiny_hf_clip(root / "l14", seed=1, projection_dim=16),
            "b32": save_tiny_hf_clip(root / "b32", seed=2, projection_dim=12)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("aesthetic_images")
    rows, paths = [], []
    for i in range(6):
        name = f"img_{i}.png"
        random_rgb(100 + i, size=(80 + 24 * i, 180 - 12 * i)).save(folder / name)
        rows.append({"id": f"r{i}", "image": name, "prompt": f"picture number {i}"})
        paths.append(folder / name)
    rows.append({"id": "broken", "image": "missing.png", "prompt": "nothing"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder, paths


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def score(capsys, folder: Path, out: Path, *metrics: str, model: str | None = None) -> dict:
    argv = ["score", folder / "manifest.jsonl", "--out", out, "--device", "cpu", "--batch-size", "4"]
    argv += ["--model", model] if model else []
    for m in metrics:
        argv += ["--metric", m]
    code, _, err = run(capsys, *argv)
    assert code == 1, err  # the missing image is the only failed row
    return json.loads(Path(f"{out}.summary.json").read_text())


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------------------- exactness
CASES = [  # (version, published file name, backbone, builder)
    ("v2-linear", "sac+logos+ava1-l14-linearMSE.pth", "l14", lambda w: v2_state(w, V2_LINEAR, 11)),
    ("v2-relu", "ava+logos-l14-reluMSE.pth", "l14", lambda w: v2_state(w, V2_RELU, 12)),
    ("v1-linear", "sa_0_4_vit_l_14_linear.pth", "l14", lambda w: v1_state(w, 13)),
    ("v1-linear", "sa_0_4_vit_b_32_linear.pth", "b32", lambda w: v1_state(w, 14)),
    ("v1-linear", "sa_0_4_vit_b_16_linear.pth", "b32", lambda w: v1_state(w, 15)),
]


@pytest.mark.parametrize("version,filename,backbone,build", CASES, ids=[c[1] for c in CASES])
def test_scores_match_the_published_recipe(capsys, tmp_path, backbones, dataset, version, filename, backbone,
                                           build):
    folder, images = dataset
    model_dir = backbones[backbone]
    width = 16 if backbone == "l14" else 12
    head = save_head(tmp_path / filename, build(width))
    out = tmp_path / "results.jsonl"
    summary = score(capsys, folder, out, f"aesthetic:head={head},model=hf:{model_dir}")
    rows = read_rows(out)
    got = np.array([r["aesthetic"] for r in rows[:-1]], dtype=np.float64)
    expected = reference_scores(model_dir, images, head, version)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=0)
    assert rows[-1]["aesthetic"] is None and "missing.png" in rows[-1]["error"]
    # the version is named in the summary and the provenance, with the file's SHA-256 and the backbone
    assert summary["aesthetic"]["version"] == version and summary["aesthetic"]["n"] == len(images)
    prov = summary["provenance"]["metrics"]["aesthetic"]
    assert prov["version"] == version and prov["model"] == f"hf:{model_dir}"
    assert prov["head"]["sha256"] == hashlib.sha256(head.read_bytes()).hexdigest()
    assert prov["head"]["file"] == str(head.resolve()) and prov["head"]["widths"][0] == width
    column = next(c for c in summary["columns"] if c["name"] == "aesthetic")
    assert column["higher_is_better"] is True and "1-10" in column["unit"]


def test_safetensors_head_scores_like_the_pth(tmp_path, backbones, dataset):
    from safetensors.torch import save_file

    folder, _ = dataset
    state = v2_state(16, V2_LINEAR, 21)
    pth = save_head(tmp_path / "head.pth", state)
    st = tmp_path / "head.safetensors"
    save_file(state, str(st))
    model = f"hf:{backbones['l14']}"
    results = {}
    for head in (pth, st):
        opts = ScoreOptions(metrics=[f"aesthetic:head={head},model={model}"], device="cpu")
        from clipgauge.runs import score as score_run

        score_run(folder / "manifest.jsonl", tmp_path / f"{head.suffix[1:]}.jsonl", opts)
        results[head.suffix] = [r["aesthetic"] for r in read_rows(tmp_path / f"{head.suffix[1:]}.jsonl")]
    assert results[".pth"] == results[".safetensors"]


# ------------------------------------------------------------------------------------------------- sharing
def test_clip_and_aesthetic_on_one_backbone_load_one_model(tmp_path, backbones):
    model = f"hf:{backbones['l14']}"
    head = save_head(tmp_path / "v2.pth", v2_state(16, V2_LINEAR, 31))
    plan = ScoringPlan(ScoreOptions(metrics=["clip", f"aesthetic:head={head},model={model}"], model=model,
                                    device="cpu")).load()
    try:
        assert list(plan.embedders) == [model]
        fingerprint = plan.fingerprint()["metrics"][1]
        assert fingerprint["head_sha256"] == hashlib.sha256(head.read_bytes()).hexdigest()
        assert fingerprint["version"] == "v2-linear"
    finally:
        plan.close()


def test_the_runs_model_does_not_move_the_aesthetic_backbone():
    opts = ScoreOptions(metrics=["clip", "aesthetic"], model="hf:/somewhere")
    (_, clip_opts), (_, aesthetic_opts), (language, _) = opts.resolved()
    assert language.name == "language"  # added to every run that reads prompts
    assert clip_opts["model"] == "hf:/somewhere" and "model" not in aesthetic_opts
    assert Aesthetic(**aesthetic_opts).model == "openai/clip-vit-large-patch14"
    # the published v1 heads default to the OpenAI CLIP they were trained on, by file name (hub files ORG/NAME/FILE:
    # a head option is parsed when the metric is built, and ORG/NAME alone names a repo, not a file)
    assert Aesthetic(head="org/heads/sa_0_4_vit_b_32_linear.pth").model == "openai/clip-vit-base-patch32"
    assert Aesthetic(head="hf:org/heads/sa_0_4_vit_b_16_linear.pth").model == "openai/clip-vit-base-patch16"
    assert Aesthetic(head="org/heads/sa_0_4_vit_b_16_linear.pth", model="hf:/x").model == "hf:/x"


# ------------------------------------------------------------------------------------------------- errors
def one_line_error(capsys, folder: Path, tmp_path: Path, metric: str) -> str:
    code, _, err = run(capsys, "score", folder / "manifest.jsonl", "--out", tmp_path / "r.jsonl", "--device", "cpu",
                       "--metric", metric)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_head_too_wide_for_its_backbone_is_one_line(capsys, tmp_path, backbones, dataset):
    folder, _ = dataset
    # a v1 ViT-B head (12 wide here) on the 16-wide backbone
    head = save_head(tmp_path / "sa_0_4_vit_b_32_linear.pth", v1_state(12, 41))
    line = one_line_error(capsys, folder, tmp_path, f"aesthetic:head={head},model=hf:{backbones['l14']}")
    assert "v1-linear" in line and "weight is 1x12" in line and "input width 12" in line and "16 wide" in line
    # the real published width on a small backbone: the message says which CLIP fits it
    head = save_head(tmp_path / "full" / "sac+logos+ava1-l14-linearMSE.pth", v2_state(768, V2_LINEAR, 42))
    line = one_line_error(capsys, folder, tmp_path, f"aesthetic:head={head},model=hf:{backbones['b32']}")
    assert "v2-linear" in line and "layers.0.weight is 1024x768" in line and "12 wide" in line
    assert "openai/clip-vit-large-patch14" in line


@pytest.mark.parametrize("state,found", [
    ({"fc.weight": torch.zeros(1, 16), "fc.bias": torch.zeros(1)}, "fc.bias 1, fc.weight 1x16"),
    ({f"layers.{i}.{k}": torch.zeros(2, 2) for i in (0, 2, 4, 6) for k in ("weight", "bias")}, "layers.0.bias 2x2"),
    ({**v2_state(16, V2_LINEAR, 0), "layers.8.weight": torch.zeros(1, 1)}, "layers.8.weight 1x1"),
], ids=["other-names", "v2-missing-last-layer", "v2-extra-key"])
def test_a_head_with_other_keys_is_one_line_naming_them(capsys, tmp_path, backbones, dataset, state, found):
    folder, _ = dataset
    head = save_head(tmp_path / "odd.pth", state)
    line = one_line_error(capsys, folder, tmp_path, f"aesthetic:head={head},model=hf:{backbones['l14']}")
    assert found in line and "layers.0/2/4/6/7" in line and "layers.0/3/6/9/11" in line


def test_hidden_widths_must_chain(capsys, tmp_path, backbones, dataset):
    folder, _ = dataset
    state = v2_state(16, V2_LINEAR, 0)
    state["layers.2.weight"] = torch.zeros(128, 1000)
    head = save_head(tmp_path / "broken.pth", state)
    line = one_line_error(capsys, folder, tmp_path, f"aesthetic:head={head},model=hf:{backbones['l14']}")
    assert "layers.2.weight is 128x1000" in line and "width 1024" in line


class NotATensor:
    pass


def test_heads_load_without_running_pickled_code(capsys, tmp_path, backbones, dataset):
    folder, _ = dataset
    head = tmp_path / "pickled.pth"
    torch.save({**v1_state(16, 0), "extra": NotATensor()}, head)
    line = one_line_error(capsys, folder, tmp_path, f"aesthetic:head={head},model=hf:{backbones['l14']}")
    assert "weights_only=True" in line


def test_missing_file_and_demo_head(capsys, tmp_path, backbones, dataset):
    folder, _ = dataset
    line = one_line_error(capsys, folder, tmp_path, f"aesthetic:head={tmp_path / 'nope.pth'},model=hf:"
                          f"{backbones['l14']}")
    assert "no such file" in line
    if not DEMO_HEAD.exists():
        line = one_line_error(capsys, folder, tmp_path, "aesthetic:head=demo,model=demo")
        assert "demo aesthetic head is not installed" in line


# ------------------------------------------------------------------------------------------------- the hub
def test_the_default_head_offline_is_one_line(capsys, tmp_path, monkeypatch, backbones, dataset):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    folder, _ = dataset
    line = one_line_error(capsys, folder, tmp_path, f"aesthetic:model=hf:{backbones['l14']}")
    assert f"hf download {DEFAULT_HEAD_REPO} {DEFAULT_HEAD_FILE}" in line and "cannot be reached" in line


def test_the_default_head_from_the_hub_cache(capsys, tmp_path, monkeypatch, backbones, dataset):
    """The default head as the hub client caches it (a copied cache, offline): found, and named a hub file."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / f"models--{DEFAULT_HEAD_REPO.replace('/', '--')}"
    revision = "0" * 40
    save_head(repo / "snapshots" / revision / DEFAULT_HEAD_FILE, v2_state(16, V2_LINEAR, 51))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    folder, images = dataset
    out = tmp_path / "r.jsonl"
    summary = score(capsys, folder, out, f"aesthetic:model=hf:{backbones['l14']}")
    head = summary["provenance"]["metrics"]["aesthetic"]["head"]
    assert head["source"] == "hub" and head["repo_id"] == DEFAULT_HEAD_REPO and head["filename"] == DEFAULT_HEAD_FILE
    expected = reference_scores(backbones["l14"], images, Path(head["file"]), "v2-linear")
    np.testing.assert_allclose([r["aesthetic"] for r in read_rows(out)[:-1]], expected, rtol=1e-4, atol=0)


def test_demo_head_format_is_read_from_safetensors(tmp_path, monkeypatch, backbones, dataset):
    """``head=demo`` reads ``clipgauge/demo/aesthetic/head.safetensors`` (a plain v1/v2-layout state dict); the
    ``DemoAesthetic`` class writes its own column. Here the shipped path points at a random head."""
    from safetensors.torch import save_file

    from clipgauge.metrics import aesthetic_head
    from clipgauge.metrics.aesthetic import DemoAesthetic
    from clipgauge.runs import score as score_run

    head = tmp_path / "demo" / "head.safetensors"
    head.parent.mkdir()
    save_file(v2_state(16, V2_LINEAR, 61), str(head))
    monkeypatch.setattr(aesthetic_head, "DEMO_HEAD", head)
    folder, images = dataset
    model = f"hf:{backbones['l14']}"
    assert DemoAesthetic().model == "demo" and Aesthetic(head="demo").model == "demo"
    result = score_run(folder / "manifest.jsonl", tmp_path / "r.jsonl",
                       ScoreOptions(metrics=[(DemoAesthetic, {"model": model})], device="cpu"))
    prov = result.summary["provenance"]["metrics"]["demo-aesthetic"]
    assert prov["head"]["source"] == "demo" and prov["version"] == "v2-linear"
    got = [r["demo_aesthetic"] for r in read_rows(tmp_path / "r.jsonl")[:-1]]
    torch.save(v2_state(16, V2_LINEAR, 61), tmp_path / "same.pth")
    expected = reference_scores(backbones["l14"], images, tmp_path / "same.pth", "v2-linear")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=0)
