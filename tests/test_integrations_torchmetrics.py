"""clipgauge's torchmetrics ``CLIPScore``: per-sample scores kept, long prompts truncated with end-of-text kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("torchmetrics")

from conftest import reference_hf_cosines  # noqa: E402

from clipgauge.integrations.torchmetrics import CLIPScore  # noqa: E402

LONG = "an astronaut riding a horse on the moon, highly detailed, " * 8  # > 77 tokens
TEXTS = ["a red circle", LONG, "two yellow stars", "a blue square"]


def _images(n: int = 4) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 48, 40), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_per_sample_scores_match_the_reference(hf_model_dir, hf_scorer):
    metric = CLIPScore(hf_scorer)
    images = _images()
    metric.update(images[:2], TEXTS[:2])
    metric.update(TEXTS[2:], images[2:])  # either order, as in torchmetrics
    pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]
    ref = reference_hf_cosines(hf_model_dir, pil, TEXTS)
    np.testing.assert_allclose(metric.scores().numpy(), 100 * ref, atol=1e-3)
    assert metric.n_truncated() == 1
    assert float(metric.compute()) == pytest.approx(max(100 * ref.mean(), 0.0), abs=1e-3)
    metric.reset()
    assert metric.scores().numel() == 0


def test_long_prompt_is_not_cut_like_torchmetrics(hf_model_dir, hf_scorer):
    """torchmetrics cuts ``input_ids[:, :77]`` after padding, losing the end-of-text token the text embedding
    is read at (and its CLIPScore fails outright with transformers 5). Ours keeps it."""
    from transformers import CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(hf_model_dir).eval()
    tok = CLIPTokenizer.from_pretrained(hf_model_dir)
    image = _images(1)
    ours = CLIPScore(hf_scorer)
    ours.update(image, [LONG])
    enc = tok([LONG], padding=True, return_tensors="pt")
    with torch.no_grad():
        cut = model.get_text_features(input_ids=enc["input_ids"][:, :77], attention_mask=enc["attention_mask"][:, :77])
    cut = getattr(cut, "pooler_output", cut)
    cut = torch.nn.functional.normalize(cut, dim=-1)[0].numpy()
    img = hf_scorer.embed_images([image[0]])[0]
    assert abs(float(ours.scores()[0]) - 100 * float(np.dot(img, cut))) > 1.0
    assert ours.n_truncated() == 1


def test_image_forms_and_errors(hf_scorer):
    metric = CLIPScore(hf_scorer)
    u8 = _images(2)
    metric.update(u8.long(), "a red circle")  # integer tensors in 0..255, as in torchmetrics' examples
    metric.update(u8.float() / 255.0, "a red circle")  # float tensors in [0, 1]
    metric.update([u8[0], u8[1]], ["a red circle", "a red circle"])  # a list of (C, H, W) images
    s = metric.scores()
    np.testing.assert_allclose(s[:2].numpy(), s[2:4].numpy(), atol=1e-4)
    np.testing.assert_allclose(s[:2].numpy(), s[4:].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="same number"):
        metric.update(u8, ["one text"] * 3)
    with pytest.raises(ValueError, match="0..255"):
        metric.update(u8.long() * 2, "a red circle")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric.update(u8.float(), "a red circle")
