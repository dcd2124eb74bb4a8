"""``hpsv2`` / ``hpsv21``: HPSv2's ``hpsv2.score()`` recipe, recomputed with open_clip and torch alone.

The checkpoints are built in the published format: ``torch.save({"state_dict": model.state_dict()})`` of a whole
OpenCLIP model (here the small architecture registered by ``tools/tiny_clip.py``; HPSv2's ViT-H-14 state dict has
the same key names, one level under ``"state_dict"``). The reference follows ``hpsv2/img_score.py``: the state dict
loaded strictly, ``preprocess_val`` of ``create_model_and_transforms(…, light_augmentation=True)`` (ToTensor,
``ResizeMaxSize``, Normalize; its code is restated below from ``hpsv2/src/open_clip/transform.py``), the arch's
tokenizer, and the diagonal of ``image_features @ text_features.T`` of the normalised features.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_line_score_error, random_rgb
from PIL import Image
from tiny_clip import register_tiny_openclip_arch

from clipgauge.cli import main
from clipgauge.errors import UsageError
from clipgauge.metrics.hpsv2 import DEFAULT_ARCH, FILES, HUB_REPO, HPSv2, HPSv21
from clipgauge.pipeline.plan import ScoreOptions
from clipgauge.runs import score
from clipgauge.sinks import read_results

open_clip = pytest.importorskip("open_clip")

PROMPTS = ["a watercolor painting of a lighthouse", "", "A CAT wearing sunglasses, 4k, trending",
           "an astronaut riding a horse on the moon, highly detailed, " * 8]
#: (width, height): upscaled and downscaled, portrait and landscape, square, already 224 on its longest side
SIZES = [(96, 64), (640, 480), (300, 900), (224, 224), (500, 501), (224, 150), (57, 300), (1024, 1024)]


class ResizeMaxSize(torch.nn.Module):
    """``hpsv2/src/open_clip/transform.py`` ResizeMaxSize (fn='max', fill=0), as published."""

    def __init__(self, max_size, interpolation=None, fill=0):
        super().__init__()
        from torchvision.transforms import InterpolationMode

        self.max_size = max_size
        self.interpolation = interpolation or InterpolationMode.BICUBIC
        self.fill = fill

    def forward(self, img):
        import torchvision.transforms.functional as F

        height, width = img.shape[1:]
        scale = self.max_size / float(max(height, width))
        if scale != 1.0:
            new_size = tuple(round(dim * scale) for dim in (height, width))
            img = F.resize(img, new_size, self.interpolation)
            pad_h = self.max_size - new_size[0]
            pad_w = self.max_size - new_size[1]
            img = F.pad(img, padding=[pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=self.fill)
        return img


def preprocess_val(size: int = 224):
    from torchvision.transforms import Compose, Normalize, ToTensor

    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    return Compose([lambda im: im if im.mode == "RGBA" else im.convert("RGB"), ToTensor(), ResizeMaxSize(size),
                    Normalize(mean=mean, std=std)])


def reference_scores(checkpoint: Path, arch: str, images: list[Path], prompts: list[str]) -> np.ndarray:
    """``hpsv2.score(img, prompt, cp=checkpoint)`` per pair, with open_clip + torch (fp32 on CPU, as HPSv2 on CPU)."""
    model = open_clip.create_model(arch, output_dict=True)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["state_dict"])
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    transform = preprocess_val()
    out = []
    for path, prompt in zip(images, prompts):
        with torch.no_grad():
            image = transform(Image.open(path)).unsqueeze(0)
            text = tokenizer([prompt])
            outputs = model(image, text)
            logits_per_image = outputs["image_features"] @ outputs["text_features"].T
            out.append(float(torch.diagonal(logits_per_image)[0]))
    return np.array(out)


@pytest.fixture(scope="module")
def arch(tmp_path_factory) -> str:
    return register_tiny_openclip_arch(tmp_path_factory.mktemp("hps_arch"))


def save_checkpoint(path: Path, arch: str, seed: int, dtype=torch.float32, **extra) -> Path:
    """An HPSv2 checkpoint in the published format: ``{"state_dict": …}`` of the whole OpenCLIP model."""
    torch.manual_seed(seed)
    model = open_clip.create_model(arch)
    torch.save({"state_dict": {k: v.to(dtype) for k, v in model.state_dict().items()}, **extra}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, arch) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hps_ckpt")
    return (save_checkpoint(root / FILES["v2.0"], arch, seed=5),
            save_checkpoint(root / FILES["v2.1"], arch, seed=6, dtype=torch.float16, epoch=3))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("hps_images")
    rows = []
    for i, (w, h) in enumerate(SIZES):
        name = f"img_{i}.{'jpg' if i % 2 else 'png'}"
        img = random_rgb(40 + i, size=(w, h))
        img.save(folder / name, quality=93) if i % 2 else img.save(folder / name)
        rows.append({"id": f"r{i}", "image": name, "prompt": PROMPTS[i % len(PROMPTS)]})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder, rows


def test_hpsv2_matches_the_published_recipe(capsys, arch, checkpoints, pictures):
    v20, _ = checkpoints
    folder, rows = pictures
    out = folder / "results.jsonl"
    code = main(["score", str(folder / "manifest.jsonl"), "--metric", f"hpsv2:checkpoint={v20},arch={arch}",
                 "--batch-size", "3", "--device", "cpu", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    got = read_results(out)
    assert [r["error"] for r in got] == [None] * len(rows), [r["error"] for r in got]
    square = [i for i, r in enumerate(rows) if SIZES[i] != (224, 150)]  # HPSv2 itself cannot score 224 x 150
    want = reference_scores(v20, arch, [folder / rows[i]["image"] for i in square], [rows[i]["prompt"] for i in square])
    np.testing.assert_allclose([got[i]["hpsv2"] for i in square], want, rtol=1e-4, atol=1e-7)

    summary = json.loads(Path(f"{out}.summary.json").read_text())
    entry = summary["hpsv2"]
    assert entry["n"] == len(rows) and entry["version"] == "v2.0"
    assert math.isclose(entry["x100"]["mean"], 100 * entry["mean"], rel_tol=1e-12)
    prov = summary["provenance"]["metrics"]["hpsv2"]
    assert prov["checkpoint"]["sha256"] == hashlib.sha256(v20.read_bytes()).hexdigest()
    assert prov["checkpoint"]["source"] == "file" and "100 x the mean cosine" in prov["x100"]
    assert summary["provenance"]["model"]["family"] == "hpsv2"
    assert "ResizeMaxSize" in summary["provenance"]["preprocessing"]["transform"]
    column = next(c for c in summary["columns"] if c["name"] == "hpsv2")
    assert column["range"] == [-1.0, 1.0] and column["unit"] == "cosine" and column["higher_is_better"] is True


def test_hpsv2_and_hpsv21_in_one_run_with_clip(arch, checkpoints, pictures, tmp_path):
    """Two checkpoints (the v2.1 one in float16, with another top-level entry) and ``clip`` on the demo CLIP: each
    image decoded once, each model loaded once; both scores match the recipe."""
    v20, v21 = checkpoints
    folder, rows = pictures
    result = score(folder / "manifest.jsonl", tmp_path / "r.parquet", ScoreOptions(
        metrics=["clip", f"hpsv2:checkpoint={v20},arch={arch}", f"hpsv21:checkpoint={v21},arch={arch}"],
        model="demo", device="cpu", batch_size=4))
    got = read_results(tmp_path / "r.parquet")
    keep = [i for i, r in enumerate(rows) if SIZES[i] != (224, 150)]
    images, prompts = [folder / rows[i]["image"] for i in keep], [rows[i]["prompt"] for i in keep]
    np.testing.assert_allclose([got[i]["hpsv2"] for i in keep], reference_scores(v20, arch, images, prompts),
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose([got[i]["hpsv21"] for i in keep], reference_scores(v21, arch, images, prompts),
                               rtol=1e-4, atol=1e-7)
    prov = result.summary["provenance"]["metrics"]
    assert prov["hpsv21"]["version"] == "v2.1"
    assert prov["hpsv21"]["checkpoint"]["sha256"] == hashlib.sha256(v21.read_bytes()).hexdigest()
    assert set(result.summary["provenance"]["models"]) == {f"hpsv2:{arch}:{v20}", f"hpsv2:{arch}:{v21}"}
    assert result.summary["hpsv21"]["x100"]["mean"] == pytest.approx(100 * result.summary["hpsv21"]["mean"])


def test_an_image_already_224_on_its_longest_side_is_padded(arch, checkpoints, tmp_path):
    """HPSv2's ResizeMaxSize skips the padding when no resize is needed, which breaks non-square images; clipgauge
    pads them: the score equals that of the same image with the padding HPSv2 gives any other size."""
    from clipgauge import Scorer
    from clipgauge.metrics.hpsv2 import HPSv2Transform, hpsv2_spec

    img = random_rgb(7, size=(224, 150))
    x = HPSv2Transform(224)(img)
    assert tuple(x.shape) == (3, 224, 224)
    pad = (224 - 150) // 2
    np.testing.assert_allclose(x[:, :pad].numpy(), np.broadcast_to(
        (-np.array([0.48145466, 0.4578275, 0.40821073]) / np.array([0.26862954, 0.26130258, 0.27577711]))
        .reshape(3, 1, 1), (3, pad, 224)), rtol=1e-6)
    scorer = Scorer(hpsv2_spec(str(checkpoints[0]), arch), device="cpu")
    assert np.isfinite(scorer.score([img], "a picture")[0])


def test_defaults_and_options():
    assert HPSv2().spec == f"hpsv2:{DEFAULT_ARCH}:{HUB_REPO}/{FILES['v2.0']}"
    assert HPSv21().spec == f"hpsv2:{DEFAULT_ARCH}:{HUB_REPO}/{FILES['v2.1']}"
    assert HPSv2.inherits == () and ScoreOptions(metrics=["hpsv21"], model="demo").resolved()[0][1] == {}
    with pytest.raises(UsageError, match="no option"):
        HPSv2(model="demo")
    with pytest.raises(UsageError, match="not an OpenCLIP architecture"):
        HPSv2(arch="hf-hub:org/name")


def test_published_architecture_has_the_documented_keys():
    """The default architecture, built without weights: the keys an HPSv2 file holds under "state_dict"."""
    with torch.device("meta"):
        model = open_clip.create_model(DEFAULT_ARCH, device="meta")
    keys = set(model.state_dict())
    top = {k for k in keys if not k.startswith(("visual.", "transformer."))}
    assert top == {"positional_embedding", "text_projection", "logit_scale", "token_embedding.weight",
                   "ln_final.weight", "ln_final.bias"}
    assert len(keys) == 686 and tuple(model.state_dict()["visual.proj"].shape) == (1280, 1024)


def test_offline_default_checkpoint_fails_in_one_line(capsys, pictures, monkeypatch, tmp_path):
    import huggingface_hub.constants

    # an empty cache, even where the real files are cached (HF_HUB_OFFLINE=1 from conftest)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    folder, _ = pictures
    for metric, file in (("hpsv2", FILES["v2.0"]), ("hpsv21", FILES["v2.1"])):
        err = one_line_score_error(capsys, folder, metric)
        assert f"file {file} of hub repo {HUB_REPO} is not in the local Hugging Face cache" in err


def test_bad_checkpoints_fail_in_one_line(capsys, arch, pictures, tmp_path):
    folder, _ = pictures
    cases = {}
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "args": argparse.Namespace(lr=1)}, tmp_path / "pickle.pt")
    cases["pickle.pt"] = "weights_only=True"
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    cases["tensor.pt"] = "holds no state dict of tensors"
    torch.save({"epoch": 1}, tmp_path / "nostate.pt")
    cases["nostate.pt"] = "holds no state dict of tensors"
    other = tmp_path / "other-tiny.json"  # another small architecture: wider, so every shape differs
    other.write_text(json.dumps({"embed_dim": 24, "vision_cfg": {"image_size": 224, "layers": 2, "width": 48,
                                                                 "head_width": 8, "patch_size": 32},
                                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 48, "heads": 4,
                                              "layers": 2}}))
    open_clip.add_model_config(other)
    save_checkpoint(tmp_path / "other.pt", "other-tiny", seed=0)
    cases["other.pt"] = f"is not a state dict of OpenCLIP {arch}: "
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint")
    cases["garbage.pt"] = "cannot read HPSv2 checkpoint"
    for name, message in cases.items():
        err = one_line_score_error(capsys, folder, f"hpsv2:checkpoint={tmp_path / name},arch={arch}")
        assert message in err, err
    err = one_line_score_error(capsys, folder, f"hpsv2:checkpoint={tmp_path / 'other.pt'},arch={arch}")
    assert "shapes differ" in err and "give the architecture it was trained as" in err
    err = one_line_score_error(capsys, folder, f"hpsv2:checkpoint={tmp_path / 'nope.pt'}")
    assert "no such file" in err
    err = one_line_score_error(capsys, folder, f"hpsv2:checkpoint={tmp_path}")
    assert "is a folder" in err
    err = one_line_score_error(capsys, folder, f"hpsv2:checkpoint={tmp_path / 'other.pt'},arch=No-Such-Arch")
    assert "cannot build OpenCLIP architecture 'No-Such-Arch'" in err
