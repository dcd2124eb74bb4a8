"""``clipgauge.retrieve``: text → image and image → text retrieval with CLIP cosines, and recall@k.

The gallery is streamed (:mod:`~clipgauge.zeroshot.gallery`): an image input encoded chunk by chunk, or the
embeddings stored with ``--save-embeddings`` (used as stored; from another model they are refused). Each query
keeps a running top-k (:class:`~clipgauge.stats.retrieval.StreamingTopK`), so memory does not grow with the gallery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..stats.retrieval import StreamingTopK, best_true_rank, hits_from_ranks, hits_from_topk, recall
from .gallery import CHUNK_ROWS, open_gallery

#: k of the recall@k the evaluation reports
RECALL_KS = (1, 5, 10)
#: cosines computed at once when ranking captions for a chunk of images (bounds memory with many captions)
MAX_CELLS = 1 << 24


@dataclass
class RetrievalResult:
    """What :func:`retrieve` found. ``queries``: per query its ``query`` (text or image path), ``direction``
    (``text_to_image`` / ``image_to_text``) and ``results`` (rank, cosine in [-1, 1], and the image's row_id,
    image and prompt, or the caption's index and text). ``recall``: with ``evaluate``, recall@k per direction
    (fractions in [0, 1]) and the counts. ``gallery``: what was searched, its row count and unusable rows."""

    queries: list[dict[str, Any]]
    recall: dict[str, Any] | None
    gallery: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "recall": self.recall, "gallery": self.gallery,
                "provenance": self.provenance}


def retrieve(
    gallery: str | Path | None = None,
    *,
    queries: Sequence[str] = (),
    images: Sequence[str | Path] = (),
    captions: Sequence[str] | None = None,
    k: int = 10,
    model: str | None = None,
    evaluate: bool = False,
    recall_ks: Sequence[int] = RECALL_KS,
    device: str = "auto",
    batch_size: int = 32,
    precision: str = "fp32",
    image_column: str | None = None,
    prompt_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> RetrievalResult:
    """Retrieve with CLIP cosines (in [-1, 1]).

    * text → image: the *k* gallery images most similar to each text of *queries*;
    * image → text: the *k* *captions* most similar to each image file of *images*;
    * *evaluate*: recall@k (each k of *recall_ks*) in both directions over the gallery, with each row's prompt as
      its true caption (texts are the distinct prompts; a text's true images are the rows with that prompt), as
      LAION's CLIP_benchmark defines it (a hit when at least one true match is in the top k).

    *gallery*: an image input (folder, manifest, shards…) or a results folder / ``.parquet`` results file saved
    with ``--save-embeddings`` (used as stored; *model* defaults to the one that made them, and another model is
    refused). *model* defaults to ``openai/clip-vit-large-patch14`` for image inputs. Memory stays bounded: the
    gallery is read *chunk_rows* at a time and each query keeps only its running top *k*.
    """
    from ..defaults import DEFAULT_MODEL
    from ..scoring.scorer import Embedder

    queries, images = [str(q) for q in queries], [str(p) for p in images]
    if k < 1:
        raise UsageError("k must be >= 1")
    if any(not q.strip() for q in queries):
        raise UsageError("a query is empty")
    if images and not captions:
        raise UsageError("image queries need captions to search (a caption list)",
                         cli="--image needs --captions FILE (the captions to search)")
    if (queries or evaluate) and gallery is None:
        raise UsageError("text queries and evaluation need a gallery of images (an image input or a results folder)")
    if not queries and not images and not evaluate:
        raise UsageError("nothing to retrieve: give text queries, image queries or evaluate",
                         cli="nothing to retrieve: give --query/--queries, --image or --evaluate")
    source = None
    if gallery is not None:
        source = open_gallery(gallery, image_column=image_column, prompt_column=prompt_column,
                              require_prompt=evaluate)
    spec = model or (getattr(source, "model", None) if source is not None else None) or DEFAULT_MODEL
    scorer = Embedder(spec, device=device, batch_size=batch_size, precision=precision)
    if source is not None:
        source.check_model(scorer)
    out: list[dict[str, Any]] = []
    out += _image_to_text(scorer, images, list(captions or []), k, chunk_rows)
    rec = None
    info: dict[str, Any] = {}
    if source is not None:
        found, rec, info = _search(scorer, source, queries, k, evaluate, list(recall_ks), chunk_rows)
        out = found + out
    prov = scorer.provenance()
    return RetrievalResult(out, rec, info, {"model": prov["model"], "preprocessing": prov["preprocessing"],
                                            "precision": prov["precision"], "libraries": prov["libraries"],
                                            "clipgauge_version": prov["clipgauge_version"],
                                            "recall_definition": "CLIP_benchmark recall@k: a query is a hit when "
                                            "at least one true match is among its k most similar items"})


def _image_to_text(scorer: Any, images: list[str], captions: list[str], k: int, chunk_rows: int
                   ) -> list[dict[str, Any]]:
    if not images:
        return []
    emb = scorer.embed_images([Path(p).expanduser() for p in images])
    top = StreamingTopK(emb, k)
    for start in range(0, len(captions), chunk_rows):
        part = captions[start:start + chunk_rows]
        top.update(scorer.embed_texts(part), np.arange(start, start + len(part)))
    cos, ids = top.result()
    return [{"query": p, "direction": "image_to_text",
             "results": [{"rank": r + 1, "cosine": float(c), "index": int(i), "text": captions[i]}
                         for r, (c, i) in enumerate(zip(cos[q], ids[q]))]} for q, p in enumerate(images)]


def _search(scorer: Any, source: Any, queries: list[str], k: int, evaluate: bool, ks: list[int], chunk_rows: int
            ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:
    """One pass over the gallery: the text queries' top-k and, with *evaluate*, recall@k in both directions."""
    texts: list[str] = []
    if evaluate:  # first pass: the distinct captions (prompts only, no image is read or encoded)
        texts = sorted({p for p in source.prompts() if p is not None})
        if not texts:
            raise UsageError("evaluation needs each image's caption: the gallery has no prompts")
    text_index = {t: i for i, t in enumerate(texts)}
    query_top = StreamingTopK(scorer.embed_texts(queries), k) if queries else None
    kmax = max(ks) if ks else 1
    caption_emb = scorer.embed_texts(texts) if texts else None
    eval_top = StreamingTopK(caption_emb, kmax) if caption_emb is not None else None
    owner: dict[int, int] = {}  # row id → index of its caption (evaluation: each image's true text)
    meta: dict[int, tuple[Any, Any]] = {}  # image and prompt of rows currently in some query's top k
    image_ranks: list[np.ndarray] = []
    rows = errors = 0
    first_error = None
    for chunk in source.chunks(scorer, chunk_rows):
        rows += len(chunk.ids)
        bad = [e for e in chunk.errors if e]
        errors += len(bad)
        first_error = first_error or (bad[0] if bad else None)
        if query_top is not None:
            query_top.update(chunk.embeddings, chunk.ids)
            for i, rid in enumerate(chunk.ids.tolist()):
                meta[rid] = (chunk.images[i], chunk.prompts[i])
            keep = set(query_top.ids.ravel().tolist())
            meta = {r: m for r, m in meta.items() if r in keep}
        if eval_top is not None:
            ok = np.array([p in text_index and e is None for p, e in zip(chunk.prompts, chunk.errors)], dtype=bool)
            emb, ids = chunk.embeddings[ok], chunk.ids[ok]
            truth = np.array([text_index[p] for p, o in zip(chunk.prompts, ok) if o], dtype=np.int64)
            owner.update(zip(ids.tolist(), truth.tolist()))
            eval_top.update(emb, ids)
            step = max(1, MAX_CELLS // max(1, len(texts)))
            for s in range(0, len(ids), step):  # image → text: rank of each image's caption among all captions
                cos = emb[s:s + step].astype(np.float32) @ caption_emb.T
                positives = np.zeros(cos.shape, dtype=bool)
                positives[np.arange(len(cos)), truth[s:s + step]] = True
                image_ranks.append(best_true_rank(cos.astype(np.float64), positives))
    info = {"rows": rows, "unusable_rows": errors, "first_error": first_error, **source.describe()}
    found = []
    if query_top is not None:
        cos, ids = query_top.result()
        for q, text in enumerate(queries):
            found.append({"query": text, "direction": "text_to_image", "results": [
                {"rank": r + 1, "cosine": float(c), "row_id": int(i), "image": meta[int(i)][0],
                 "prompt": meta[int(i)][1]} for r, (c, i) in enumerate(zip(cos[q], ids[q]))]})
    rec = None
    if eval_top is not None:
        _, top_ids = eval_top.result()
        positive = [set() for _ in texts]
        for rid, t in owner.items():
            positive[t].add(rid)
        ranks = np.concatenate(image_ranks) if image_ranks else np.zeros(0, dtype=np.int64)
        having = [t for t in range(len(texts)) if positive[t]]  # texts whose every image failed are left out
        rec = {"text_to_image": recall(hits_from_topk(top_ids[having], [positive[t] for t in having], ks)),
               "image_to_text": recall(hits_from_ranks(ranks, ks)),
               "texts": len(having), "images": len(owner), "ks": ks}
    return found, rec, info
