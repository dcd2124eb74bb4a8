"""``clipgauge.rewards``: every reward equals ``clipgauge score`` with the same metric on the same images.

Each metric runs once through the command line (``clipgauge score --metric SPEC``) on a manifest holding images at
the model's input size (no resize: the two paths must agree to 1e-5) and images that need resizing (512 × 512,
300 × 180, 40 × 40: within :data:`RESIZE_BOUND`, the documented bound for these random-weight models), and once
through ``load_reward`` on the same uint8 pixels / 255. The models are the small random ones of the metric tests,
in the published formats (a transformers folder, an OpenCLIP checkpoint, an HPSv2 ``{"state_dict"}`` file, a
PickScore model and processor folder pair, a LAION v2 head), and the shipped demo CLIP with its aesthetic head.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image
from tiny_clip import TINY_OPENCLIP_ARCH

from clipgauge.cli import main
from clipgauge.errors import UsageError
from clipgauge.rewards import as_image_batch, ddpo_reward_fn, load_reward, reward_metrics
from test_metric_aesthetic import V2_LINEAR, save_head, v2_state
from test_metric_hpsv2 import arch, checkpoints  # noqa: F401 - module fixtures
from test_metric_pickscore import pickscore_dirs  # noqa: F401 - module fixture

#: the largest |reward − clipgauge score| on images that need resizing, for these random-weight test models, in
#: cosine (aesthetic heads: their score); 1e-5 where no resize is needed. Measured here on 2026-12-05: clip ≤ 3.5e-4
#: (transformers), 2.3e-4 (OpenCLIP), 6.8e-4 (demo); aesthetic 4.7e-4; demo-aesthetic 8.5e-3; PickScore 3.3e-4;
#: CLIP-IQA 2.5e-5; HPSv2 6e-8 (its eval path is a tensor resize already). docs/rewards.md has the full tables.
RESIZE_BOUND = {"clip": 1e-3, "pickscore": 1e-3, "aesthetic": 2e-3, "demo-aesthetic": 2e-2, "hpsv2": 1e-5,
                "hpsv21": 1e-5, "clip_iqa": 1e-4}
PROMPTS = ["a red circle", "two yellow stars on a blue sky", "", "an astronaut riding a horse on the moon, " * 8]
RESIZED = [(512, 512), (300, 180), (40, 40)]


@pytest.fixture(scope="module")
def models(tmp_path_factory, checkpoints, pickscore_dirs) -> dict[str, tuple[str, dict]]:  # noqa: F811
    """name → (``--metric`` spec, ``load_reward`` keyword arguments)."""
    from tiny_clip import save_tiny_hf_clip, save_tiny_openclip

    root = tmp_path_factory.mktemp("reward_models")
    hf = save_tiny_hf_clip(root / "hf", seed=11, projection_dim=16)
    oc = f"open_clip:{TINY_OPENCLIP_ARCH}:{save_tiny_openclip(root / 'oc', seed=12)}"
    head = save_head(root / "sac+logos+ava1-l14-linearMSE.pth", v2_state(16, V2_LINEAR, seed=13))
    model_dir, processor_dir = pickscore_dirs
    v20, v21 = checkpoints
    return {
        "clip-hf": (f"clip:model=hf:{hf}", {"metric": "clip", "model": f"hf:{hf}"}),
        "clip-openclip": (f"clip:model={oc}", {"metric": "clip", "model": oc}),
        "clip-demo-torchmetrics": ("clip:model=demo,scale=torchmetrics",
                                   {"metric": "clip", "model": "demo", "scale": "torchmetrics"}),
        "aesthetic": (f"aesthetic:head={head},model=hf:{hf}", {"metric": "aesthetic", "head": str(head),
                                                               "model": f"hf:{hf}"}),
        "demo-aesthetic": ("demo-aesthetic", {"metric": "demo-aesthetic"}),
        "pickscore": (f"pickscore:model={model_dir},processor={processor_dir}",
                      {"metric": "pickscore", "model": str(model_dir), "processor": str(processor_dir)}),
        "hpsv2": (f"hpsv2:checkpoint={v20},arch={TINY_OPENCLIP_ARCH}",
                  {"metric": "hpsv2", "model": str(v20), "arch": TINY_OPENCLIP_ARCH}),
        "hpsv21": (f"hpsv21:checkpoint={v21},arch={TINY_OPENCLIP_ARCH}",
                   {"metric": "hpsv21", "model": str(v21), "arch": TINY_OPENCLIP_ARCH}),
        "clip_iqa": (f"clip_iqa:model=hf:{hf},prompts=quality|crisp:Crisp photo./Muddy photo.",
                     {"metric": "clip_iqa", "model": f"hf:{hf}", "prompts": "quality|crisp:Crisp photo./Muddy photo."}),
    }


def images_for(folder: Path, native: int) -> list[dict]:
    """Rows: three images at the model's input size (no resize) and one of each size in :data:`RESIZED`."""
    sizes = [(native, native)] * 3 + RESIZED
    rows = []
    for i, size in enumerate(sizes):
        name = f"img_{i}_{size[0]}x{size[1]}.png"
        random_rgb(300 + i, size=size).save(folder / name)
        rows.append({"id": f"r{i}", "image": name, "prompt": PROMPTS[i % len(PROMPTS)], "size": list(size)})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def units(reward, column: str) -> float:
    """How many column units one unit of cosine is: 100 for the torchmetrics scale, ``logit_scale.exp()`` for
    PickScore (about 100 for PickScore v1, 81 for the test model), 1 otherwise."""
    if column == "score" and reward.head.scale == "torchmetrics":
        return 100.0
    return float(reward.head.scale) if column == "pickscore" else 1.0


def cli_scores(folder: Path, spec: str, capsys) -> list[dict]:
    out = folder / "scores.jsonl"
    code = main(["score", str(folder / "manifest.jsonl"), "--metric", spec, "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    return [json.loads(line) for line in out.read_text().splitlines()]


def batch_of(folder: Path, rows: list[dict]) -> torch.Tensor:
    """The rows' images as the reward takes them: uint8 levels / 255, (B, 3, H, W) float32."""
    arrays = [np.asarray(Image.open(folder / r["image"]).convert("RGB")) for r in rows]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


@pytest.mark.parametrize("case", ["clip-hf", "clip-openclip", "clip-demo-torchmetrics", "aesthetic", "demo-aesthetic",
                                  "pickscore", "hpsv2", "hpsv21", "clip_iqa"])
def test_reward_equals_clipgauge_score(case, models, tmp_path, capsys):
    spec, kwargs = models[case]
    kwargs = dict(kwargs)
    metric = kwargs.pop("metric")
    reward = load_reward(metric, **kwargs)
    native = reward.preprocess.size[0]
    rows = images_for(tmp_path, native)
    expected = cli_scores(tmp_path, spec, capsys)
    columns = reward.head.columns
    for size in [(native, native), *RESIZED]:
        idx = [i for i, r in enumerate(rows) if tuple(r["size"]) == size]
        images = batch_of(tmp_path, [rows[i] for i in idx]).requires_grad_(True)
        got = reward.scores(images, [rows[i]["prompt"] for i in idx])
        bound = 1e-5 if size == (native, native) else RESIZE_BOUND[metric]  # in cosine or the head's own units
        for column in columns:
            want = np.array([expected[i][column] for i in idx])
            diff = np.abs(got[column].detach().double().numpy() - want).max()
            assert diff <= bound * units(reward, column), (case, size, column, diff)
        got[reward.column].sum().backward()
        assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in reward.parameters())
    assert not reward.training and not reward.model.training


def test_every_listed_metric_has_a_reward():
    assert {"clip", "aesthetic", "demo-aesthetic", "pickscore", "hpsv2", "hpsv21", "clip_iqa"} <= set(reward_metrics())
    with pytest.raises(UsageError, match="no differentiable reward"):
        load_reward("diversity")


# ----------------------------------------------------------------------------------------------- gradients
def directional_check(reward, images: torch.Tensor, prompts, seed: int = 0) -> None:
    """(f(x + εv) − f(x − εv)) / 2ε against ∇f · v, in float64, for three random directions."""
    g = torch.Generator().manual_seed(seed)
    x = images.double().clone().requires_grad_(True)
    f = reward(x, prompts).sum()
    (grad,) = torch.autograd.grad(f, x)
    eps = 1e-6
    for _ in range(3):
        v = torch.randn(x.shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            numeric = (reward(x + eps * v, prompts).sum() - reward(x - eps * v, prompts).sum()) / (2 * eps)
        analytic = (grad * v).sum()
        assert torch.isclose(numeric, analytic, rtol=1e-5, atol=1e-9), (float(numeric), float(analytic))


@pytest.mark.parametrize("case,size", [("clip-hf", (224, 224)), ("clip-hf", (300, 180)), ("hpsv2", (300, 180)),
                                       ("aesthetic", (512, 512)), ("clip_iqa", (240, 240))])
def test_gradients_match_finite_differences_in_float64(case, size, models):
    _, kwargs = models[case]
    kwargs = dict(kwargs)
    reward = load_reward(kwargs.pop("metric"), dtype=torch.float64, **kwargs)
    g = torch.Generator().manual_seed(1)
    # values away from 0 and 1, so that no clamp sits at a kink within ±ε
    images = 0.1 + 0.8 * torch.rand((2, 3, size[1], size[0]), generator=g, dtype=torch.float64)
    directional_check(reward, images, PROMPTS[:2])


@pytest.mark.parametrize("case", ["clip-hf", "clip-openclip", "aesthetic", "pickscore", "hpsv2", "clip_iqa"])
def test_gradients_are_finite_on_black_white_and_constant_images(case, models):
    _, kwargs = models[case]
    kwargs = dict(kwargs)
    reward = load_reward(kwargs.pop("metric"), **kwargs)
    for size in [(224, 224), (512, 384)]:
        images = torch.stack([torch.full((3, size[1], size[0]), v) for v in (0.0, 1.0, 0.5)]).requires_grad_(True)
        reward(images, "a photo").sum().backward()
        assert torch.isfinite(images.grad).all(), (case, size)
    assert all(p.grad is None for p in reward.parameters())


def test_value_range_minus_one_to_one(models):
    _, kwargs = models["clip-hf"]
    kwargs = {k: v for k, v in kwargs.items() if k != "metric"}
    plain, vae = load_reward("clip", **kwargs), load_reward("clip", value_range=(-1, 1), **kwargs)
    x = torch.rand((2, 3, 256, 256), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(plain(x, PROMPTS[:2]), vae(x * 2 - 1, PROMPTS[:2]), atol=1e-6)


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while *fn* runs (what checkpointing cuts)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_gradient_checkpointing_gives_the_same_values_and_gradients_with_less_memory(models):
    for case in ("clip-hf", "clip-openclip"):
        kwargs = {k: v for k, v in models[case][1].items() if k != "metric"}
        reward = load_reward("clip", **kwargs)
        x = torch.rand((2, 3, 320, 240), generator=torch.Generator().manual_seed(4))
        results, kept = [], []
        for enable in (False, True, False):
            reward.gradient_checkpointing(enable)
            xi = x.clone().requires_grad_(True)
            box = {}
            kept.append(saved_bytes(lambda: box.setdefault("v", reward(xi, PROMPTS[:2]))))  # noqa: B023
            box["v"].sum().backward()
            results.append((box["v"].detach(), xi.grad))
        for value, grad in results[1:]:
            assert torch.allclose(value, results[0][0], atol=1e-6) and torch.allclose(grad, results[0][1], atol=1e-6)
        # the tiny towers' activations are small beside the image-sized tensors: less, not a ratio (see the benchmark)
        assert kept[1] < kept[0] and kept[2] == kept[0], (case, kept)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_and_stays_close(dtype, models):
    kwargs = {k: v for k, v in models["clip-hf"][1].items() if k != "metric"}
    reward = load_reward("clip", **kwargs)
    x = torch.rand((2, 3, 224, 224), generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    exact = reward(x, PROMPTS[:2]).detach()
    with torch.autocast("cpu", dtype=dtype):
        value = reward(x, PROMPTS[:2])
    value.sum().backward()
    assert value.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert (value.detach() - exact).abs().max() < 0.05


# ----------------------------------------------------------------------------------------------- the rest of the API
def test_prompt_embeddings_are_cached_and_public(models):
    kwargs = {k: v for k, v in models["clip-hf"][1].items() if k != "metric"}
    reward = load_reward("clip", **kwargs)
    calls = []
    tokenize = reward.encoder.tokenize
    reward.encoder.tokenize = lambda texts, *a: calls.append(list(texts)) or tokenize(texts, *a)
    x = torch.rand((3, 3, 224, 224), generator=torch.Generator().manual_seed(6))
    reward(x, ["a", "b", "a"])
    reward(x, ["b", "a", "c"])
    assert calls == [["a", "b"], ["c"]]
    text = reward.text_embeddings(["a", "c"])
    image = reward.image_embeddings(x)
    assert text.shape == (2, 16) and image.shape == (3, 16)
    assert torch.allclose(image.norm(dim=-1), torch.ones(3)) and not text.requires_grad
    assert torch.allclose(reward(x, "a"), (image * reward.text_embeddings(["a"])).sum(-1), atol=1e-6)
    with pytest.warns(UserWarning, match="truncated"):
        reward.text_embeddings(["an astronaut riding a horse on the moon, " * 12])


def test_ddpo_reward_fn_takes_what_samplers_give(models):
    kwargs = {k: v for k, v in models["clip-hf"][1].items() if k != "metric"}
    reward = load_reward("clip", **kwargs)
    fn = ddpo_reward_fn(reward, batch_size=2)
    levels = np.random.default_rng(7).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    rewards, meta = fn(levels, PROMPTS[:3], [{}] * 3)
    expected = reward(torch.from_numpy(levels).permute(0, 3, 1, 2).float() / 255, PROMPTS[:3]).detach().numpy()
    assert rewards.shape == (3,) and np.allclose(rewards, expected, atol=1e-6)
    assert meta["metric"] == "clip" and meta["column"] == "score"
    pil = [Image.fromarray(a) for a in levels]
    assert torch.equal(as_image_batch(pil), torch.from_numpy(levels).permute(0, 3, 1, 2).float() / 255)


def test_bad_input_gives_one_line_errors(models):
    kwargs = {k: v for k, v in models["clip-hf"][1].items() if k != "metric"}
    reward = load_reward("clip", **kwargs)
    cases = [(torch.rand(3, 64, 64), "(B, 3, H, W)"), (torch.rand(2, 4, 64, 64), "3 colour channels"),
             (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "floating point"), (np.zeros((2, 3, 8, 8)), "torch tensor")]
    for images, words in cases:
        with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
            reward(images, ["a", "b"])
        assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="2 images but 3 prompts"):
        reward(torch.rand(2, 3, 64, 64), ["a", "b", "c"])
    with pytest.raises(UsageError, match="pass one prompt"):
        reward(torch.rand(2, 3, 64, 64))
    with pytest.raises(UsageError, match="value_range"):
        load_reward("clip", value_range=(1, 1), **kwargs)
    with pytest.raises(UsageError, match="has no option"):
        load_reward("clip", colour="red", **kwargs)


@pytest.mark.slow  # inductor's first compile: 25-75 s on 2 cores
def test_torch_compile_on_cpu_gives_the_eager_values_and_gradients():
    reward = load_reward("clip", model="demo")
    x = torch.rand((2, 3, 96, 80), generator=torch.Generator().manual_seed(8))
    eager_x, compiled_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    eager = reward(eager_x, PROMPTS[:2])
    eager.sum().backward()
    compiled = torch.compile(reward)(compiled_x, PROMPTS[:2])
    compiled.sum().backward()
    assert torch.allclose(compiled, eager, atol=1e-5) and torch.allclose(compiled_x.grad, eager_x.grad, atol=1e-5)
