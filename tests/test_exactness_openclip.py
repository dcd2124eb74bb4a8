"""clipgauge's cosines equal open_clip's own encode_image / encode_text, to 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PROMPTS, random_rgb
from tiny_clip import TINY_OPENCLIP_ARCH

from clipgauge import Scorer

open_clip = pytest.importorskip("open_clip")
TOL = 1e-4


@pytest.fixture(scope="module")
def reference(openclip_checkpoint):
    model, _, preprocess = open_clip.create_model_and_transforms(
        TINY_OPENCLIP_ARCH, pretrained=str(openclip_checkpoint)
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_OPENCLIP_ARCH)

    def cosine(img, text):
        with torch.no_grad():
            fi = model.encode_image(preprocess(img).unsqueeze(0), normalize=True)[0]
            ft = model.encode_text(tokenizer([text]), normalize=True)[0]
        return float(fi @ ft)

    return cosine, tokenizer


@pytest.mark.parametrize("batch_size", [1, 4])
def test_cosines_match_open_clip(openclip_checkpoint, reference, batch_size):
    cosine, _ = reference
    images = [random_rgb(i, size=(100 + 10 * i, 180)) for i in range(6)]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(6)]
    scorer = Scorer(f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}", device="cpu", batch_size=batch_size)
    got = scorer.score(images, prompts)
    expected = np.array([cosine(im, p) for im, p in zip(images, prompts)])
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    assert np.ptp(expected) > 1e-3


def test_truncation_flag_and_end_of_text(openclip_checkpoint, reference):
    cosine, tokenizer = reference
    scorer = Scorer(f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}", device="cpu")
    long_prompt = PROMPTS[3]
    assert tokenizer([long_prompt])[0, -1].item() == tokenizer.eot_token_id  # open_clip keeps EOT too
    img = random_rgb(1)
    res = scorer.score_pairs([img, img], [long_prompt, "a photo of a cat"])
    assert res.truncated.tolist() == [True, False]
    assert abs(res.cosine[0] - cosine(img, long_prompt)) < TOL


def test_pickle_checkpoint_loads_with_same_weights_hash(tmp_path, openclip_checkpoint):
    from tiny_clip import save_tiny_openclip

    pt = save_tiny_openclip(tmp_path, seed=0, fmt="pt")
    a = Scorer(f"open_clip:{TINY_OPENCLIP_ARCH}:{openclip_checkpoint}", device="cpu")
    b = Scorer(f"open_clip:{TINY_OPENCLIP_ARCH}:{pt}", device="cpu")
    assert a.encoder.weights_sha256() == b.encoder.weights_sha256()
    img = random_rgb(0)
    assert abs(a.score([img], "x")[0] - b.score([img], "x")[0]) < 1e-6
