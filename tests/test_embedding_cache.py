"""The embedding cache returns the same scores without re-encoding, and never serves stale entries."""

from __future__ import annotations

import numpy as np
from conftest import PROMPTS, random_rgb

from clipgauge import Scorer


class CountingEncoder:
    """Counts how many images/prompts reach the real encoder's forward pass."""

    def __init__(self, scorer: Scorer) -> None:
        self.images = 0
        self.texts = 0
        enc = scorer.encoder
        image_fn, text_fn = enc.encode_images, enc.encode_texts

        def images(pixels):
            self.images += len(pixels)
            return image_fn(pixels)

        def texts(tokens):
            self.texts += len(next(iter(tokens.values())))
            return text_fn(tokens)

        enc.encode_images, enc.encode_texts = images, texts


def test_cache_hits_give_identical_scores_without_encoding(tmp_path, hf_model_dir):
    paths = []
    for i in range(5):
        random_rgb(i).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    prompts = PROMPTS[:5]
    cold = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=2, cache_dir=tmp_path / "cache")
    first = cold.score(paths, prompts)
    assert cold.cache.stats()["misses"] == 10

    warm = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=2, cache_dir=tmp_path / "cache")
    counter = CountingEncoder(warm)
    second = warm.score(paths, prompts)
    # exact: no forward pass, the cache hands back the float32 bits the cold run computed, and each cosine is a
    # per-row dot product of those bits (no batch to split)
    np.testing.assert_array_equal(first, second)
    assert (counter.images, counter.texts) == (0, 0)
    assert warm.cache.stats()["hits"] == 10

    # a changed file is a different key: only it is re-encoded
    random_rgb(99).save(tmp_path / "3.png")
    third = warm.score(paths, prompts)
    assert counter.images == 1 and counter.texts == 0
    np.testing.assert_array_equal(np.delete(third, 3), np.delete(first, 3))  # exact: cache hits, as above
    assert third[3] != first[3]
    uncached = Scorer(f"hf:{hf_model_dir}", device="cpu").score(paths, prompts)
    np.testing.assert_allclose(third, uncached, atol=1e-6)


def test_other_precision_or_prefix_does_not_hit(tmp_path, hf_model_dir):
    img = [random_rgb(0)]
    Scorer(f"hf:{hf_model_dir}", device="cpu", cache_dir=tmp_path).score(img, "a cat")
    bf16 = Scorer(f"hf:{hf_model_dir}", device="cpu", precision="bf16", cache_dir=tmp_path)
    counter = CountingEncoder(bf16)
    bf16.score(img, "a cat")
    assert (counter.images, counter.texts) == (1, 1)
    prefixed = Scorer(f"hf:{hf_model_dir}", device="cpu", prompt_prefix="a photo of ", cache_dir=tmp_path)
    counter = CountingEncoder(prefixed)
    prefixed.score(img, "a cat")
    assert (counter.images, counter.texts) == (0, 1)  # same image bytes hit; the prefixed text does not
