"""The HTML page of a retrieval (``clipgauge retrieve --report``): per query its top-k images as thumbnails (or
captions) with their cosines, and the recall@k table; self-contained (images embedded as ``data:`` URIs)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from .thumbnails import thumbnails

#: thumbnail side in pixels
THUMB = 128


def retrieval_section(document: dict[str, Any], thumb_size: int = THUMB) -> str:
    """The HTML of the retrieval results in *document* (:meth:`RetrievalResult.to_dict`): recall table, then
    one block per query."""
    parts = []
    rec = document.get("recall")
    if rec:
        ks = [str(k) for k in rec.get("ks", [])]
        head = "".join(f"<th>recall@{k}</th>" for k in ks)
        body = "".join(
            f"<tr><td>{d.replace('_', ' ')}</td>" + "".join(f"<td>{_num(rec[d].get(k))}</td>" for k in ks) + "</tr>"
            for d in ("text_to_image", "image_to_text"))
        parts.append(f"<h2>Recall</h2><p class='note'>{rec.get('texts')} captions, {rec.get('images')} images; "
                     "a query is a hit when at least one true match is among its k most similar items "
                     f"(CLIP_benchmark).</p><table><tr><th>direction</th>{head}</tr>{body}</table>")
    paths = [r["image"] for q in document.get("queries", []) if q["direction"] == "text_to_image"
             for r in q["results"] if r.get("image")]
    made = dict(zip(paths, thumbnails(paths, thumb_size))) if paths else {}
    for q in document.get("queries", []):
        parts.append(f"<h2>{html.escape(q['direction'].replace('_', ' → ', 1).replace('_', ' '))}: "
                     f"{html.escape(str(q['query']))}</h2><div class='grid'>")
        for r in q["results"]:
            if q["direction"] == "text_to_image":
                t = made.get(r.get("image"))
                pic = (f"<img src='{t.uri}' width='{t.width}' height='{t.height}' alt=''>" if t is not None and t.uri
                       else f"<div class='missing'>{html.escape(t.error if t is not None else 'no image')}</div>")
                label = html.escape(str(r.get("prompt") or r.get("image") or r.get("row_id")))
            else:
                pic, label = "", html.escape(str(r.get("text")))
            parts.append(f"<figure>{pic}<figcaption>#{r['rank']} · cosine {_num(r['cosine'])}<br>{label}"
                         "</figcaption></figure>")
        parts.append("</div>")
    return "\n".join(parts)


def write_retrieval_report(document: dict[str, Any], out: str | Path, *, title: str = "clipgauge retrieval",
                           thumb_size: int = THUMB) -> Path:
    """Write the retrieval page to *out* (atomically) and return its path."""
    model = (document.get("provenance") or {}).get("model", {}).get("spec", "")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\"><style>body{font-family:sans-serif;margin:2em}"
            ".grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;width:" + str(thumb_size + 20) + "px}"
            "figcaption{font-size:12px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
            ".note{color:#555}.missing{color:#a00;font-size:12px}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='note'>model {html.escape(str(model))}; cosines in [-1, 1]</p>"
            f"<section id='retrieval'>{retrieval_section(document, thumb_size)}</section></body></html>")
    out = Path(out)
    write_atomic(out, page)
    return out


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"
