"""Zero-shot classification and retrieval math, against the published recipes written out here: the CLIP paper's
``zeroshot_classifier`` (torch), scipy's softmax, direct loops for accuracy/recall/confusion, and LAION
CLIP_benchmark's ``recall_at_k`` (torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax

from clipgauge.errors import UsageError
from clipgauge.metrics.zeroshot import parse_labels, parse_templates
from clipgauge.stats.classification import ensemble_classifier, evaluate, label_probabilities, ranking, true_ranks
from clipgauge.stats.retrieval import StreamingTopK, best_true_rank, hits_from_ranks, hits_from_topk, recall


def unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clip_paper_zeroshot_classifier(text_features: torch.Tensor) -> torch.Tensor:
    """``zeroshot_classifier`` of openai/CLIP's Prompt_Engineering_for_ImageNet notebook, per class: normalise the
    template embeddings, mean, normalise; stacked as (n_classes, D)."""
    weights = []
    for class_embeddings in text_features:  # (n_templates, D)
        class_embeddings = class_embeddings / class_embeddings.norm(dim=-1, keepdim=True)
        class_embedding = class_embeddings.mean(dim=0)
        class_embedding /= class_embedding.norm()
        weights.append(class_embedding)
    return torch.stack(weights, dim=0)


def test_ensemble_classifier_is_the_clip_paper_recipe() -> None:
    rng = np.random.default_rng(0)
    n_labels, n_templates = 7, 5
    texts = rng.standard_normal((n_labels * n_templates, 32)).astype(np.float32)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    ours = ensemble_classifier(texts, n_labels, n_templates)
    ref = clip_paper_zeroshot_classifier(torch.from_numpy(texts).reshape(n_labels, n_templates, -1)).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    # one template: the classifier is the label's own embedding
    np.testing.assert_allclose(ensemble_classifier(texts[:3], 3, 1), texts[:3], atol=1e-6)


def test_probabilities_are_softmax_of_scaled_cosines_and_ranks_follow_them() -> None:
    rng = np.random.default_rng(1)
    images, classifier = unit(rng, 40), unit(rng, 9)
    images[3] = np.nan  # an image without embedding
    scale = 41.29
    probs = label_probabilities(images, classifier, scale)
    ok = np.arange(40) != 3
    ref = softmax(scale * (images[ok].astype(np.float64) @ classifier.T.astype(np.float64)), axis=1)
    np.testing.assert_allclose(probs[ok], ref, rtol=1e-9, atol=1e-12)
    assert np.isnan(probs[3]).all()
    np.testing.assert_allclose(probs[ok].sum(axis=1), 1.0, atol=1e-12)
    order = ranking(probs)
    assert (order[ok, 0] == ref.argmax(axis=1)).all()
    truth = rng.integers(0, 9, 40)
    ranks = true_ranks(probs, truth)
    for i in np.flatnonzero(ok):
        assert ranks[i] == 1 + int((ref[list(np.flatnonzero(ok)).index(i)] > probs[i, truth[i]]).sum())
    assert ranks[3] == 0


def test_evaluation_matches_direct_counts() -> None:
    rng = np.random.default_rng(2)
    n, n_labels = 500, 6
    logits = rng.standard_normal((n, n_labels))
    truth = rng.integers(0, n_labels - 1, n)  # the last label never occurs in the truth
    pred = logits.argmax(axis=1)
    ranks = np.array([1 + int((logits[i] > logits[i, truth[i]]).sum()) for i in range(n)])
    labels = [f"c{i}" for i in range(n_labels)]
    ev = evaluate(pred.astype(float), truth.astype(float), ranks.astype(float), labels)
    assert ev["n"] == n
    assert ev["top1"] == pytest.approx(float(np.mean(pred == truth)), abs=1e-12)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert ev["top5"] == pytest.approx(float(np.mean([truth[i] in top5[i] for i in range(n)])), abs=1e-12)
    recalls = [np.mean(pred[truth == c] == c) for c in range(n_labels - 1)]  # classes present in the truth
    assert ev["mean_per_class_recall"] == pytest.approx(float(np.mean(recalls)), abs=1e-12)
    for t in range(n_labels):
        for p in range(n_labels):
            assert ev["confusion"][t][p] == int(np.sum((truth == t) & (pred == p)))
    assert ev["per_class"][-1]["n"] == 0 and np.isnan(ev["per_class"][-1]["recall"])
    # rows without a prediction or truth are left out
    pred2 = pred.astype(float)
    pred2[:10] = np.nan
    assert evaluate(pred2, truth.astype(float), ranks.astype(float), labels)["n"] == n - 10


def test_streaming_topk_equals_a_full_sort_in_any_chunking() -> None:
    rng = np.random.default_rng(3)
    queries, gallery = unit(rng, 5), unit(rng, 1000)
    gallery[[10, 500]] = np.nan  # rows without an embedding are never returned
    full = queries.astype(np.float32) @ np.nan_to_num(gallery).T
    full[:, [10, 500]] = -np.inf
    ref_ids = np.argsort(-full, axis=1, kind="stable")[:, :7]
    for chunk in (1, 3, 64, 1000):
        top = StreamingTopK(queries, 7)
        for s in range(0, 1000, chunk):
            top.update(gallery[s:s + chunk], np.arange(s, min(s + chunk, 1000)))
            assert top.ids.shape[1] <= 7  # memory: k per query, never the gallery
        cos, ids = top.result()
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(cos, np.take_along_axis(full, ref_ids, axis=1), atol=1e-6)
    small = StreamingTopK(queries, 50)
    small.update(gallery[:20], np.arange(20))
    assert small.result()[1].shape == (5, 19)  # 20 rows, one of them (row 10) without an embedding


def clip_benchmark_recall_at_k(scores: torch.Tensor, positive_pairs: torch.Tensor, k: int) -> torch.Tensor:
    """``recall_at_k`` of clip_benchmark/metrics/zeroshot_retrieval.py (LAION-AI/CLIP_benchmark)."""
    nb_texts, nb_images = scores.shape
    topk_indices = torch.topk(scores, k, dim=1)[1]
    nb_positive = positive_pairs.sum(dim=1)
    topk_indices_onehot = torch.nn.functional.one_hot(topk_indices, num_classes=nb_images)
    positive_pairs_reshaped = positive_pairs.view(nb_texts, 1, nb_images)
    nb_true_positive = (topk_indices_onehot * positive_pairs_reshaped).sum(dim=(1, 2))
    return nb_true_positive / nb_positive


def test_recall_at_k_is_clip_benchmarks_definition() -> None:
    rng = np.random.default_rng(4)
    n_texts, n_images = 30, 200
    texts = unit(rng, n_texts)
    caption_of = rng.integers(0, n_texts, n_images)
    caption_of[:n_texts] = np.arange(n_texts)  # every text has at least one image
    images = texts[caption_of] + 0.5 * rng.standard_normal((n_images, texts.shape[1])).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)  # near their caption, not always nearest
    positive = np.zeros((n_texts, n_images), dtype=bool)
    positive[caption_of, np.arange(n_images)] = True
    scores = torch.from_numpy(texts.astype(np.float64) @ images.T.astype(np.float64))
    pairs = torch.from_numpy(positive).long()
    ks = [1, 5, 10]
    # CLIP_benchmark: image_retrieval_recall@k (text -> image) and text_retrieval_recall@k (image -> text)
    ref_t2i = {str(k): (clip_benchmark_recall_at_k(scores, pairs, k) > 0).float().mean().item() for k in ks}
    ref_i2t = {str(k): (clip_benchmark_recall_at_k(scores.T, pairs.T, k) > 0).float().mean().item() for k in ks}
    top = StreamingTopK(texts, max(ks))
    for s in range(0, n_images, 37):
        top.update(images[s:s + 37], np.arange(s, min(s + 37, n_images)))
    t2i = recall(hits_from_topk(top.result()[1], [set(np.flatnonzero(p)) for p in positive], ks))
    i2t = recall(hits_from_ranks(best_true_rank(scores.T.numpy(), positive.T), ks))
    for k in map(str, ks):
        assert t2i[k] == pytest.approx(ref_t2i[k], abs=1e-6)
        assert i2t[k] == pytest.approx(ref_i2t[k], abs=1e-6)
    assert 0 < t2i["1"] < t2i["10"] <= 1 and 0 < i2t["1"] < 1  # neither trivially all hits nor all misses


def test_imagenet_templates_are_the_clip_papers_80() -> None:
    zsm = pytest.importorskip("open_clip.zero_shot_metadata")
    ours = parse_templates("imagenet")
    assert len(ours) == 80
    assert [t.replace("{}", "dog") for t in ours] == [f("dog") for f in zsm.OPENAI_IMAGENET_TEMPLATES]


def test_labels_and_templates_are_checked() -> None:
    assert parse_labels(" cat, dog ,, bird") == ["cat", "dog", "bird"]
    assert parse_templates(None) == ["{}"]
    assert parse_templates("a photo of a {}.|imagenet")[0] == "a photo of a {}."
    with pytest.raises(UsageError, match="no labels"):
        parse_labels(" , ")
    with pytest.raises(UsageError, match="twice"):
        parse_labels(["cat", "cat"])
    with pytest.raises(UsageError, match="has no '\\{\\}'"):
        parse_templates(["a photo of a cat"])
