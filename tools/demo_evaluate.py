"""Measure how well a CLIP model understands the demo scenes (one implementation for trainer, tests, model card).

Formerly ``clipgauge.demo.evaluate``; it is used only by ``tools/train_demo_model.py`` and the tests, so it
lives in ``tools/`` (tests put ``tools/`` on ``sys.path`` in ``conftest.py``).

All scores are computed with the model's own ``transformers`` pieces (``CLIPModel``,
``CLIPTokenizer``, ``CLIPImageProcessorPil``) on freshly rendered :mod:`clipgauge.demo.scenes`
images, so the numbers describe the model exactly as a user loads it. Fractions are in ``[0, 1]``;
cosines in ``[-1, 1]``.

Metrics
-------
``top1``
    Zero-shot classification of single-object images over the 32 colour × shape captions
    (``"a red circle"`` ...): fraction of images whose own caption has the highest cosine.
``matched_vs_mismatched``
    Over all (image, caption differing only in colour or only in shape) pairs — 10 per image —
    the fraction in which the image's own caption scores higher (``colour_pairs`` /
    ``shape_pairs`` split it by the changed attribute).
``mean_cos_matched`` / ``mean_cos_mismatched``
    Mean cosine of images with their own caption / with those 10 mismatched captions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import demo_sampling
import numpy as np
import torch
from PIL import Image

from clipgauge.demo import scenes

#: Seed of the held-out evaluation renders (training draws from other seeds' streams).
EVAL_SEED = 20_240_917


def load_model(folder: str | Path) -> tuple[Any, Any, Any]:
    """Load ``(CLIPModel, CLIPTokenizer, CLIPImageProcessorPil)`` from a Hugging Face CLIP folder (eval mode)."""
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(str(folder)).eval()
    return model, CLIPTokenizer.from_pretrained(str(folder)), CLIPImageProcessorPil.from_pretrained(str(folder))


def _features(output: Any) -> torch.Tensor:
    # transformers < 5 returns a tensor, >= 5 a model output whose pooler_output is projected.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@torch.no_grad()
def encode_images(model: Any, processor: Any, images: Sequence[Image.Image], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised float32 image embeddings, shape ``(len(images), projection_dim)``."""
    out = []
    for i in range(0, len(images), batch_size):
        pixels = processor(images=list(images[i : i + batch_size]), return_tensors="pt")["pixel_values"]
        emb = _features(model.get_image_features(pixel_values=pixels.to(model.dtype))).float()
        out.append(emb / emb.norm(dim=-1, keepdim=True))
    return torch.cat(out)


@torch.no_grad()
def encode_texts(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised float32 text embeddings, shape ``(len(texts), projection_dim)``."""
    out = []
    for i in range(0, len(texts), batch_size):
        tok = tokenizer(list(texts[i : i + batch_size]), padding=True, truncation=True, return_tensors="pt")
        emb = _features(
            model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        ).float()
        out.append(emb / emb.norm(dim=-1, keepdim=True))
    return torch.cat(out)


def render_single_objects(
    n_images: int = 320, *, seed: int = EVAL_SEED, ood: Iterable[str] = (), size: int = 64
) -> tuple[list[Image.Image], list[int]]:
    """Render ``n_images`` single-object images, balanced over the 32 classes of
    :func:`demo_sampling.single_object_specs` (class ``i % 32`` for image ``i``); returns images and class indices.

    ``ood`` lists :data:`scenes.OOD_FACTORS` to draw out of the training distribution; ``size`` in pixels.
    """
    rng = np.random.default_rng(seed)
    specs = demo_sampling.single_object_specs()
    labels = [i % len(specs) for i in range(n_images)]
    images = [scenes.render(scenes.sample_scene(specs[c], rng, ood=ood), size) for c in labels]
    return images, labels


def single_object_metrics(
    model: Any,
    tokenizer: Any,
    processor: Any,
    images: Sequence[Image.Image],
    labels: Sequence[int],
    *,
    prefix: int = 0,
) -> dict[str, float]:
    """Zero-shot metrics (see the module docstring) of single-object *images* with class indices *labels*.

    ``prefix`` indexes :data:`scenes.PREFIXES` for the class captions (0: ``"a red circle"``).
    """
    specs = demo_sampling.single_object_specs(prefix)
    sims = encode_images(model, processor, images) @ encode_texts(model, tokenizer, [s.caption for s in specs]).T
    y = torch.as_tensor(list(labels))
    own = sims[torch.arange(len(y)), y]
    colour_wins, shape_wins, mismatched = [], [], []
    for j, spec in enumerate(specs):
        t = spec.things[0]
        for k, other in enumerate(specs):
            o = other.things[0]
            if (o.colour == t.colour) == (o.shape == t.shape):
                continue  # same class, or both attributes differ
            rows = (y == j).nonzero().flatten()
            if len(rows) == 0:
                continue
            wins = (own[rows] > sims[rows, k]).float()
            (colour_wins if o.shape == t.shape else shape_wins).append(wins)
            mismatched.append(sims[rows, k])
    colour, shape = torch.cat(colour_wins), torch.cat(shape_wins)
    return {
        "n_images": float(len(y)),
        "top1": float((sims.argmax(dim=1) == y).float().mean()),
        "matched_vs_mismatched": float(torch.cat([colour, shape]).mean()),
        "colour_pairs": float(colour.mean()),
        "shape_pairs": float(shape.mean()),
        "mean_cos_matched": float(own.mean()),
        "mean_cos_mismatched": float(torch.cat(mismatched).mean()),
    }


def evaluate_single_objects(
    model: Any,
    tokenizer: Any,
    processor: Any,
    *,
    n_images: int = 320,
    seed: int = EVAL_SEED,
    ood: Iterable[str] = (),
    prefix: int = 0,
    size: int = 64,
) -> dict[str, float]:
    """Render a held-out single-object set (:func:`render_single_objects`, ``size`` pixels) and score it
    (:func:`single_object_metrics`). This is the quality bar of the bundled model."""
    images, labels = render_single_objects(n_images, seed=seed, ood=ood, size=size)
    return single_object_metrics(model, tokenizer, processor, images, labels, prefix=prefix)


def caption_preference(
    model: Any,
    tokenizer: Any,
    processor: Any,
    *,
    kind: str,
    change: str,
    n_images: int = 320,
    seed: int = EVAL_SEED,
    ood: Iterable[str] = (),
) -> float:
    """Fraction (0..1) of images of random captions of ``kind`` whose own caption scores higher than a
    mismatched caption made with :func:`scenes.mismatch_spec` ``change`` (e.g. ``"relation"``, ``"swap"``)."""
    rng = np.random.default_rng(seed)
    images, own, other = [], [], []
    background_prob = 1.0 if change == "background" else 0.0
    while len(images) < n_images:
        spec = demo_sampling.sample_spec(
            rng, kind_weights={kind: 1.0}, background_prob=background_prob, prefix_prob=0.0
        )
        try:
            wrong = scenes.mismatch_spec(spec, rng, change=change)
        except ValueError:
            continue  # the change does not apply to this caption (e.g. "swap" with a shared colour)
        scene = scenes.sample_scene(spec, rng, ood=ood)
        if scenes.satisfies(scene, wrong):
            continue
        images.append(scenes.render(scene))
        own.append(spec.caption)
        other.append(wrong.caption)
    img = encode_images(model, processor, images)
    s_own = (img * encode_texts(model, tokenizer, own)).sum(-1)
    s_other = (img * encode_texts(model, tokenizer, other)).sum(-1)
    return float((s_own > s_other).float().mean())


def evaluate_all(model: Any, tokenizer: Any, processor: Any, *, n_images: int = 3200, seed: int = EVAL_SEED) -> dict:
    """The full report used for the model card: single-object metrics in distribution, per
    out-of-distribution factor and with all factors at once, with ``"a photo of"`` prompts,
    and two-object caption preferences. ``n_images`` per set; returns a JSON-friendly dict."""
    report: dict[str, Any] = {"n_images_per_set": n_images, "seed": seed}
    single = {"in_distribution": evaluate_single_objects(model, tokenizer, processor, n_images=n_images, seed=seed)}
    for i, factor in enumerate((*scenes.OOD_FACTORS, "all")):
        ood = scenes.OOD_FACTORS if factor == "all" else (factor,)
        single[f"ood_{factor}"] = evaluate_single_objects(
            model, tokenizer, processor, n_images=n_images, seed=seed + 1 + i, ood=ood
        )
    single["prompt_a_photo_of"] = evaluate_single_objects(
        model, tokenizer, processor, n_images=n_images, seed=seed + 10, prefix=1
    )
    single["render_256px"] = evaluate_single_objects(
        model, tokenizer, processor, n_images=n_images, seed=seed + 11, size=256
    )
    report["single_object"] = single
    pairs = {}
    for j, (kind, change) in enumerate(
        [
            ("rel", "relation"),
            ("rel", "swap"),
            ("rel", "colour"),
            ("rel", "shape"),
            ("and", "swap"),
            ("two", "count"),
            ("one", "count"),
            ("two", "colour"),
            ("one", "background"),
        ]
    ):
        pairs[f"{kind}_vs_{change}"] = caption_preference(
            model, tokenizer, processor, kind=kind, change=change, n_images=n_images, seed=seed + 20 + j
        )
    report["caption_preference"] = pairs
    return report
