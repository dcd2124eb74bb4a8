"""The bundled demo CLIP: loads with plain ``transformers`` and meets its documented quality bar.

These tests use the shipped weights in ``src/clipgauge/demo/model`` (never retrain them); only the
``slow`` smoke test runs the trainer, for a few steps, into a temporary folder.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_evaluate import EVAL_SEED, evaluate_single_objects, render_single_objects
from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

from clipgauge.demo import MODEL_DIR, scenes

ROOT = Path(__file__).resolve().parents[1]
TRAINER = ROOT / "tools" / "train_demo_model.py"

#: The quality bar stated in the model card (fractions).
MIN_TOP1 = 0.95
MIN_MATCHED_VS_MISMATCHED = 0.98


@pytest.fixture(scope="module")
def demo_clip() -> tuple[CLIPModel, CLIPTokenizer, CLIPImageProcessorPil]:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = CLIPModel.from_pretrained(MODEL_DIR).eval()
    return model, CLIPTokenizer.from_pretrained(MODEL_DIR), CLIPImageProcessorPil.from_pretrained(MODEL_DIR)


def test_folder_is_a_standard_small_hf_clip() -> None:
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "vocab.json"} <= names
    assert {"merges.txt", "tokenizer_config.json"} <= names
    size = sum(p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file())
    assert size < 20e6, f"demo model folder is {size / 1e6:.1f} MB"
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "clip"
    assert config["text_config"]["vocab_size"] == 49408
    assert config["text_config"]["eos_token_id"] == 49407
    preprocessor = json.loads((MODEL_DIR / "preprocessor_config.json").read_text())
    side = config["vision_config"]["image_size"]
    assert preprocessor["crop_size"] == {"height": side, "width": side}
    assert preprocessor["size"] == {"shortest_edge": side}
    card = (MODEL_DIR / "README.md").read_text()
    assert "not" in card and "substitute" in card and "top-1" in card


def test_loads_with_transformers(demo_clip) -> None:
    model, tokenizer, processor = demo_clip
    assert model.dtype == torch.float32
    assert tokenizer("a red circle")["input_ids"] == [49406, 320, 736, 7117, 49407]  # the real CLIP BPE
    image, _ = scenes.render_prompt("a red circle", rng=0, size=64)
    inputs = processor(images=[image], return_tensors="pt")
    side = model.config.vision_config.image_size
    assert tuple(inputs["pixel_values"].shape) == (1, 3, side, side)
    text = tokenizer(["a red circle", "a blue star"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**text, pixel_values=inputs["pixel_values"])
    assert out.logits_per_image.shape == (1, 2)
    assert out.logits_per_image[0, 0] > out.logits_per_image[0, 1]
    assert 1.0 < model.logit_scale.detach().exp().item() <= 100.0


def test_quality_bar_on_fresh_held_out_renders(demo_clip) -> None:
    """Zero-shot colour × shape classification (32 classes) and matched-vs-mismatched captions."""
    metrics = evaluate_single_objects(*demo_clip, n_images=320, seed=EVAL_SEED + 100)
    assert metrics["top1"] >= MIN_TOP1, metrics
    assert metrics["matched_vs_mismatched"] >= MIN_MATCHED_VS_MISMATCHED, metrics
    assert metrics["mean_cos_matched"] > metrics["mean_cos_mismatched"] + 0.1, metrics


def test_cosines_rank_followed_above_mismatched_demo_images(demo_clip) -> None:
    """What ``clipgauge demo`` shows: images drawn for a prompt beat deliberately wrong ones."""
    from demo_evaluate import encode_images, encode_texts

    model, tokenizer, processor = demo_clip
    prompts = [
        "a red circle",
        "a photo of a blue square",
        "two yellow stars",
        "a green triangle on a white background",
        "a purple star to the left of an orange circle",
    ]
    examples = scenes.render_examples(
        prompts, per_prompt=6, follow_fraction=0.5, seed=3, size=256, change=scenes.DEMO_MODEL_CHANGES
    )
    cos = (
        encode_images(model, processor, [e.image for e in examples])
        * encode_texts(model, tokenizer, [e.prompt for e in examples])
    ).sum(-1)
    follows = torch.tensor([e.follows for e in examples])
    for i in range(len(prompts)):
        block, ok = cos[6 * i : 6 * i + 6], follows[6 * i : 6 * i + 6]
        assert block[ok].min() > block[~ok].max(), (prompts[i], block.tolist())


def test_trainer_preprocessing_matches_the_shipped_processor(demo_clip) -> None:
    """The trainer normalises pixels itself; it must equal what users get from the processor."""
    spec = importlib.util.spec_from_file_location("train_demo_model", TRAINER)
    trainer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainer)
    _, tokenizer, processor = demo_clip
    batch = trainer.Batches(tokenizer, seed=0, batch_size=4, image_size=processor.crop_size["height"]).next()
    images, _ = render_single_objects(4, seed=1, size=processor.crop_size["height"])
    ours = trainer.pixel_values([np.asarray(im) for im in images])
    theirs = processor(images=images, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert batch["pixel_values"].shape == theirs.shape
    assert batch["positives"].diagonal().all()


@pytest.mark.slow
def test_training_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "model"
    cmd = [sys.executable, str(TRAINER), "--steps", "20", "--threads", "1", "--batch-size", "32"]
    cmd += ["--eval-every", "0", "--eval-images", "32", "--log-every", "10", "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=600, capture_output=True)
    model = CLIPModel.from_pretrained(out)
    CLIPTokenizer.from_pretrained(out)
    CLIPImageProcessorPil.from_pretrained(out)
    assert model.config.text_config.vocab_size == 49408
    assert (out / "README.md").is_file()
    log = json.loads((out / "training_log.json").read_text())
    assert log["log"][-1]["step"] == 20
