"""``clipgauge retrieve`` / :func:`clipgauge.retrieve` with the shipped demo CLIP on fresh renders: recall@k against
LAION CLIP_benchmark's recipe on embeddings computed here with transformers, stored embeddings used as stored and
refused for another model, image → text, the CLI and its HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import demo_sampling
import numpy as np
import pytest
import torch
from demo_evaluate import EVAL_SEED, render_single_objects

from clipgauge.cli import main
from clipgauge.demo import MODEL_DIR
from clipgauge.errors import UsageError
from clipgauge.pipeline.plan import ScoreOptions
from clipgauge.runs import score
from clipgauge.zeroshot.retrieve import retrieve
from test_zeroshot_math import clip_benchmark_recall_at_k  # LAION CLIP_benchmark's recall_at_k

CAPTIONS = [s.caption for s in demo_sampling.single_object_specs()]  # the 32 colour x shape captions
N = 64


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """A manifest of fresh renders (seeds not used in training), each with its caption as prompt."""
    root = tmp_path_factory.mktemp("retrieve")
    images, classes = render_single_objects(N, seed=EVAL_SEED + 1415)
    rows = []
    for i, (im, c) in enumerate(zip(images, classes)):
        im.save(root / f"{i:03d}.png")
        rows.append({"image": f"{i:03d}.png", "prompt": CAPTIONS[c]})
    (root / "gallery.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def reference_embeddings(root: Path, rows: list[dict], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(MODEL_DIR).eval()
    tok, proc = CLIPTokenizer.from_pretrained(MODEL_DIR), CLIPImageProcessorPil.from_pretrained(MODEL_DIR)
    with torch.no_grad():
        px = proc(images=[Image.open(root / r["image"]).convert("RGB") for r in rows], return_tensors="pt")
        img = model.get_image_features(pixel_values=px["pixel_values"]).pooler_output
        txt = model.get_text_features(**tok(texts, padding=True, return_tensors="pt")).pooler_output
    img, txt = img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)
    return img.numpy(), txt.numpy()


def test_recall_matches_clip_benchmark_and_text_to_image_recall_at_1_is_at_least_90_percent(gallery) -> None:
    result = retrieve(gallery / "gallery.jsonl", queries=["a red circle", "a blue star"], k=3, model="demo",
                      evaluate=True, device="cpu", chunk_rows=10)  # 7 chunks: the running top-k is exercised
    rows = [json.loads(x) for x in (gallery / "gallery.jsonl").read_text().splitlines()]
    texts = sorted({r["prompt"] for r in rows})
    img, txt = reference_embeddings(gallery, rows, texts + ["a red circle", "a blue star"])
    scores = torch.from_numpy(txt[: len(texts)].astype(np.float64) @ img.T.astype(np.float64))
    positive = torch.tensor([[r["prompt"] == t for r in rows] for t in texts]).long()
    for k in (1, 5, 10):
        t2i = (clip_benchmark_recall_at_k(scores, positive, k) > 0).float().mean().item()
        i2t = (clip_benchmark_recall_at_k(scores.T, positive.T, k) > 0).float().mean().item()
        assert result.recall["text_to_image"][str(k)] == pytest.approx(t2i, abs=1e-9)
        assert result.recall["image_to_text"][str(k)] == pytest.approx(i2t, abs=1e-9)
    assert result.recall["text_to_image"]["1"] >= 0.9
    assert result.recall["texts"] == len(texts) and result.recall["images"] == N
    for q, query in enumerate(result.queries):
        direct = txt[len(texts) + q] @ img.T
        best = np.argsort(-direct)[:3]
        assert [r["row_id"] for r in query["results"]] == best.tolist()
        np.testing.assert_allclose([r["cosine"] for r in query["results"]], direct[best], atol=1e-5)
        assert query["results"][0]["prompt"] == query["query"]


def test_stored_embeddings_are_used_as_stored_and_another_model_is_refused(gallery, hf_model_dir) -> None:
    run = gallery / "run"
    score(gallery / "gallery.jsonl", run, ScoreOptions(model="demo", device="cpu", save_embeddings=True))
    stored = retrieve(run, queries=["a green square"], k=5, evaluate=True, device="cpu")
    fresh = retrieve(gallery / "gallery.jsonl", queries=["a green square"], k=5, model="demo", evaluate=True,
                     device="cpu")
    assert stored.gallery["kind"] == "stored" and stored.provenance["model"]["spec"] == "demo"
    a, b = stored.queries[0]["results"], fresh.queries[0]["results"]
    assert a[0]["row_id"] == b[0]["row_id"]
    np.testing.assert_allclose([r["cosine"] for r in a], [r["cosine"] for r in b], atol=2e-3)  # float16 storage
    assert stored.recall["text_to_image"]["1"] >= 0.9
    with pytest.raises(UsageError, match="another model"):
        retrieve(run, queries=["a green square"], model=f"hf:{hf_model_dir}", device="cpu")


def test_image_to_text_finds_the_caption(gallery) -> None:
    rows = [json.loads(x) for x in (gallery / "gallery.jsonl").read_text().splitlines()][:4]
    result = retrieve(images=[gallery / r["image"] for r in rows], captions=CAPTIONS, k=3, model="demo",
                      device="cpu")
    assert [q["direction"] for q in result.queries] == ["image_to_text"] * 4
    assert sum(q["results"][0]["text"] == r["prompt"] for q, r in zip(result.queries, rows)) >= 3
    assert all(-1 <= x["cosine"] <= 1 for q in result.queries for x in q["results"])


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_and_html_page(capsys, gallery, tmp_path) -> None:
    (tmp_path / "q.txt").write_text("a red circle\n\na yellow triangle\n", encoding="utf-8")
    code, out, err = run(capsys, "retrieve", gallery / "gallery.jsonl", "--queries", tmp_path / "q.txt", "-k", "4",
                         "--model", "demo", "--device", "cpu", "--evaluate", "--report", tmp_path / "r.html",
                         "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [q["query"] for q in doc["queries"]] == ["a red circle", "a yellow triangle"]
    assert all(len(q["results"]) == 4 for q in doc["queries"])
    assert doc["recall"]["text_to_image"]["1"] >= 0.9
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.count("data:image/jpeg;base64,") == 8 and "recall@1" in html


@pytest.mark.parametrize("args, message", [
    (["--image", "x.png"], "--image needs --captions"),
    (["--queries", "missing.txt"], "queries file not found"),
    ([], "nothing to retrieve"),
    (["--captions", "c.txt"], "captions file not found"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, gallery, args, message) -> None:
    code, _, err = run(capsys, "retrieve", gallery / "gallery.jsonl", "--model", "demo", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
