"""Scores unchanged when the process patches attention the way SageAttention does (issue #23, part 1).

The patch used here is what a training process does to enable a fast kernel: it replaces
``torch.nn.functional.scaled_dot_product_attention`` with a function that drops ``attn_mask`` / ``is_causal``
and rounds Q and K to fp16. clipgauge's embeddings must not move, and the user's patch must stay in place.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image

from clipgauge.encoders.attention import genuine_attention, patched_attention

TORCH_SDPA = torch._C._nn.scaled_dot_product_attention
PROMPTS = ["a red circle", "two yellow stars on a very long and winding road", "a blue square"]


def sloppy_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None,
                dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                enable_gqa: bool = False) -> torch.Tensor:
    """SageAttention-like: ignores the mask and causality, quantises Q and K (here: rounds them to fp16)."""
    q, k = query.half().to(query.dtype), key.half().to(key.dtype)
    return TORCH_SDPA(q, k, value, dropout_p=dropout_p, scale=scale, enable_gqa=enable_gqa)


@contextmanager
def patched_sdpa() -> Iterator[None]:
    """Replace ``F.scaled_dot_product_attention`` as a training process would; undo at the end of the test."""
    functional = torch.nn.functional
    original = functional.scaled_dot_product_attention
    functional.scaled_dot_product_attention = sloppy_sdpa
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = original


@contextmanager
def shimmed_functional() -> Iterator[None]:
    """Replace ``torch.nn.functional`` entirely with a module whose SDPA is the sloppy one."""
    real = torch.nn.functional
    shim = types.ModuleType("torch.nn.functional")
    shim.__dict__.update(real.__dict__)
    shim.scaled_dot_product_attention = sloppy_sdpa
    torch.nn.functional = shim
    try:
        yield
    finally:
        torch.nn.functional = real


def _images() -> list[Image.Image]:
    return [random_rgb(i, size=(40 + 4 * i, 36)) for i in range(3)]


def _hf_text_features(model_dir: Path) -> np.ndarray:
    from transformers import CLIPModel, CLIPTokenizer

    model, tok = CLIPModel.from_pretrained(model_dir).eval(), CLIPTokenizer.from_pretrained(model_dir)
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    return out.numpy()


def test_the_patch_changes_a_raw_transformers_clip(hf_model_dir) -> None:
    """Proof that the tests below can fail: the patch moves transformers' own CLIP text embeddings."""
    clean = _hf_text_features(hf_model_dir)
    with patched_sdpa():
        assert "torch.nn.functional.scaled_dot_product_attention" in patched_attention()
        dirty = _hf_text_features(hf_model_dir)
        with genuine_attention():
            guarded = _hf_text_features(hf_model_dir)
    assert np.abs(dirty - clean).max() > 1e-3
    np.testing.assert_allclose(guarded, clean, atol=1e-6)
    assert patched_attention() == []


@pytest.mark.parametrize("spec_kind", ["hf", "open_clip"])
def test_scorer_cosines_unchanged_patch_before_and_after_loading(spec_kind, hf_model_dir, openclip_checkpoint) -> None:
    from tiny_clip import TINY_OPENCLIP_ARCH

    from clipgauge import Scorer

    spec = f"hf:{hf_model_dir}" if spec_kind == "hf" else f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}"
    images = _images()
    expected = Scorer(spec, device="cpu").score(images, PROMPTS)
    with patched_sdpa():  # patched before the Scorer is created
        before = Scorer(spec, device="cpu").score(images, PROMPTS)
        assert torch.nn.functional.scaled_dot_product_attention is sloppy_sdpa  # the user's patch stays
    scorer = Scorer(spec, device="cpu")
    with patched_sdpa():  # patched after
        after = scorer.score(images, PROMPTS)
        assert torch.nn.functional.scaled_dot_product_attention is sloppy_sdpa
    with shimmed_functional():  # the whole module replaced
        shim = Scorer(spec, device="cpu").score(images, PROMPTS)
        assert torch.nn.functional.scaled_dot_product_attention is sloppy_sdpa
    for got in (before, after, shim):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_tracker_values_unchanged_in_a_training_style_loop(hf_model_dir) -> None:
    from clipgauge.track import CLIPTracker

    images = _images()
    clean = CLIPTracker(f"hf:{hf_model_dir}", prompts=PROMPTS, device="cpu").log(0, images)
    with patched_sdpa():
        tracker = CLIPTracker(f"hf:{hf_model_dir}", prompts=PROMPTS, device="cpu")
        for step in (1, 2):
            torch.nn.functional.scaled_dot_product_attention(*(torch.randn(1, 2, 4, 8) for _ in range(3)))
            result = tracker.log(step, images)
            assert torch.nn.functional.scaled_dot_product_attention is sloppy_sdpa
            for key in ("clip/mean", "clip/std", "clip/min", "clip/max"):
                assert result[key] == pytest.approx(clean[key], abs=1e-6)
            for name, ps in result.per_prompt.items():
                np.testing.assert_allclose(ps.scores, clean.per_prompt[name].scores, atol=1e-6)


SUBPROCESS = """
import json, sys, torch
sys.path[:0] = {paths!r}
TORCH_SDPA = torch._C._nn.scaled_dot_product_attention

def sloppy_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    q, k = query.half().to(query.dtype), key.half().to(key.dtype)
    return TORCH_SDPA(q, k, value, dropout_p=dropout_p, scale=scale, enable_gqa=enable_gqa)

torch.nn.functional.scaled_dot_product_attention = sloppy_sdpa  # before clipgauge (or transformers) is imported
from conftest import random_rgb
assert "clipgauge" not in sys.modules and "transformers" not in sys.modules
from clipgauge import Scorer
images = [random_rgb(i, size=(40 + 4 * i, 36)) for i in range(3)]
cos = Scorer({spec!r}, device="cpu").score(images, {prompts!r})
assert torch.nn.functional.scaled_dot_product_attention is sloppy_sdpa
print(json.dumps([float(c) for c in cos]))
"""


def test_patch_before_clipgauge_is_imported(hf_model_dir) -> None:
    from clipgauge import Scorer

    spec = f"hf:{hf_model_dir}"
    tests = Path(__file__).resolve().parent
    code = SUBPROCESS.format(paths=[str(tests), str(tests.parent / "tools")], spec=spec, prompts=PROMPTS)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got, Scorer(spec, device="cpu").score(_images(), PROMPTS), atol=1e-6)


def test_unrecoverable_patch_is_named_in_a_warning(monkeypatch, hf_model_dir) -> None:
    """A patched function whose genuine version clipgauge cannot find is named, never silently used."""
    import clipgauge.encoders.attention as attention
    from clipgauge import Scorer

    monkeypatch.setattr(attention, "_GENUINE_MHA", None)
    monkeypatch.setattr(attention, "_warned", set())
    monkeypatch.setattr(torch.nn.functional, "multi_head_attention_forward", lambda *a, **k: None)
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu")
    with pytest.warns(attention.PatchedAttentionWarning, match="multi_head_attention_forward"):
        scorer.score(_images()[:1], PROMPTS[:1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the sageattention package needs a CUDA GPU")
def test_real_sageattention(hf_model_dir) -> None:
    sageattention = pytest.importorskip("sageattention", reason="the sageattention package is not installed")
    from clipgauge import Scorer

    images = _images()
    expected = Scorer(f"hf:{hf_model_dir}", device="cuda", precision="fp16").score(images, PROMPTS)
    original = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = sageattention.sageattn
    try:
        got = Scorer(f"hf:{hf_model_dir}", device="cuda", precision="fp16").score(images, PROMPTS)
        assert torch.nn.functional.scaled_dot_product_attention is sageattention.sageattn
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
    np.testing.assert_allclose(got, expected, atol=1e-6)
