"""Multilingual models from their published formats, against the libraries' own forward passes (tiny random weights).

* OpenCLIP XLM-R (``xlm-roberta-base-ViT-B-32`` layout: HF text tower, mean pooler, ``HFTokenizer``);
* NLLB-CLIP (``nllb-clip-base`` layout: NLLB encoder, CLS pooler, linear projection; the prompt's FLORES-200
  language token first);
* M-CLIP (``multilingual_clip.MultilingualCLIP``: XLM-R, mean over the attention mask, linear map) with a CLIP
  image tower.

Tokenizers are real SentencePiece models trained in the test (tools/tiny_multilingual.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rgb

pytest.importorskip("sentencepiece")
pytest.importorskip("open_clip")

import open_clip  # noqa: E402
from tiny_multilingual import save_tiny_mclip, save_tiny_openclip_hf_text  # noqa: E402

from clipgauge import Scorer  # noqa: E402

PROMPTS = ["a red cat on a blue mat", "kırmızı bir kedi", "eine rote Katze im Garten", "красная кошка",
           "夜の庭の猫", "a"]
ATOL = 1e-4


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x.detach().float()
    return (x / x.norm(dim=-1, keepdim=True)).numpy()


@pytest.fixture(scope="module")
def xlmr(tmp_path_factory):
    name, checkpoint = save_tiny_openclip_hf_text(tmp_path_factory.mktemp("xlmr"), "xlm-roberta")
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(checkpoint))
    return name, checkpoint, model.eval(), preprocess


@pytest.fixture(scope="module")
def nllb(tmp_path_factory):
    name, checkpoint = save_tiny_openclip_hf_text(tmp_path_factory.mktemp("nllb"), "nllb")
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(checkpoint))
    return name, checkpoint, model.eval(), preprocess


# --------------------------------------------------------------------------------------------- OpenCLIP XLM-R
def test_openclip_xlmr_matches_open_clip(xlmr):
    name, checkpoint, model, preprocess = xlmr
    scorer = Scorer(f"open_clip:{name}:{checkpoint}", device="cpu", batch_size=4)
    tokenizer = open_clip.get_tokenizer(name)
    assert type(tokenizer).__name__ == "HFTokenizer" and scorer.context_length == tokenizer.context_length == 77
    assert not scorer.encoder.needs_language
    assert scorer.encoder.languages == "multilingual"
    with torch.no_grad():
        ref_text = _unit(model.encode_text(tokenizer(PROMPTS)))
        images = [random_rgb(i) for i in range(3)]
        ref_image = _unit(model.encode_image(torch.stack([preprocess(im) for im in images])))
    np.testing.assert_allclose(scorer.embed_texts(PROMPTS), ref_text, atol=ATOL, rtol=0)
    np.testing.assert_allclose(scorer.embed_images(images), ref_image, atol=ATOL, rtol=0)


def test_openclip_xlmr_truncation_counts_hf_tokens(xlmr):
    from transformers import AutoTokenizer

    name, checkpoint, _, _ = xlmr
    scorer = Scorer(f"open_clip:{name}:{checkpoint}", device="cpu")
    folder = json.loads(Path(checkpoint.parent / f"{name}.json").read_text())["text_cfg"]["hf_tokenizer_name"]
    hf = AutoTokenizer.from_pretrained(folder)
    texts = [" ".join(["kedi"] * k) for k in (10, 30, 60, 200)]
    counts = [len(hf(t)["input_ids"]) for t in texts]  # <s> … </s>, untruncated
    assert min(counts) <= 77 < max(counts)
    assert scorer.truncated(texts) == [c > 77 for c in counts]


# --------------------------------------------------------------------------------------------- NLLB-CLIP
def _nllb_reference(model, folder: str, texts: list[str], codes: list[str]) -> np.ndarray:
    """transformers' NllbTokenizer with ``src_lang`` (as open_clip pads: max_length 77) + open_clip's encode_text."""
    from transformers import NllbTokenizer

    rows = []
    for text, code in zip(texts, codes):
        tok = NllbTokenizer.from_pretrained(folder, src_lang=code)
        ids = tok([text], return_tensors="pt", max_length=77, padding="max_length", truncation=True).input_ids
        assert int(ids[0, 0]) == tok.convert_tokens_to_ids(code)  # the language token comes first
        with torch.no_grad():
            rows.append(_unit(model.encode_text(ids))[0])
    return np.stack(rows)


def _nllb_folder(name: str, checkpoint: Path) -> str:
    return json.loads(Path(checkpoint.parent / f"{name}.json").read_text())["text_cfg"]["hf_tokenizer_name"]


def test_nllb_tokenises_each_prompt_in_its_language(nllb):
    from transformers import NllbTokenizer

    name, checkpoint, _, _ = nllb
    scorer = Scorer(f"open_clip:{name}:{checkpoint}", device="cpu")
    assert scorer.encoder.needs_language
    folder = _nllb_folder(name, checkpoint)
    tok = NllbTokenizer.from_pretrained(folder)
    tokens = scorer.encoder.tokenize(["kırmızı bir kedi"] * 3, languages=["tur_Latn", "eng_Latn", "jpn_Jpan"])
    ids = tokens.inputs["text"]
    assert [int(i) for i in ids[:, 0]] == tok.convert_tokens_to_ids(["tur_Latn", "eng_Latn", "jpn_Jpan"])
    assert torch.equal(ids[0, 1:], ids[1, 1:])  # only the language token differs
    assert tok.src_lang == "eng_Latn" and scorer.encoder.tokenizer.tokenizer.src_lang == "eng_Latn"  # restored


def test_nllb_matches_open_clip_with_the_language_token(nllb):
    name, checkpoint, model, _ = nllb
    scorer = Scorer(f"open_clip:{name}:{checkpoint}", device="cpu", batch_size=2)
    codes = ["eng_Latn", "tur_Latn", "deu_Latn", "rus_Cyrl", "jpn_Jpan", "eng_Latn"]
    given = ["en", "tr", "deu_Latn", "ru", "ja", "eng_Latn"]  # ISO 639-1 or FLORES-200, as a manifest may hold
    ref = _nllb_reference(model, _nllb_folder(name, checkpoint), PROMPTS, codes)
    np.testing.assert_allclose(scorer.embed_texts(PROMPTS, languages=given), ref, atol=ATOL, rtol=0)
    # the same words as Turkish and as English are different inputs (and cached apart)
    both = scorer.embed_texts(["kırmızı bir kedi"] * 2, languages=["tr", "en"])
    assert np.abs(both[0] - both[1]).max() > 1e-3
    np.testing.assert_allclose(both[1], _nllb_reference(model, _nllb_folder(name, checkpoint),
                                                        ["kırmızı bir kedi"], ["eng_Latn"])[0], atol=ATOL, rtol=0)
    emb, truncated, errors = scorer.embed_prompt_rows(PROMPTS[:3], ["tr", "", "zz"])  # the pipeline's per-row path
    np.testing.assert_allclose(emb[0], scorer.embed_texts(PROMPTS[:1], languages=["tur_Latn"])[0], atol=0, rtol=0)
    assert np.isnan(emb[2]).all() and errors[0] is None and "unknown language 'zz'" in errors[2]
    languages = scorer.provenance()["text"]["languages"]  # rows counted: only those of embed_prompt_rows
    assert sum(languages["codes"].values()) == 2 and languages["sources"] == {"column": 1, "detected": 1}


def test_nllb_run_takes_the_language_column(nllb, tmp_path):
    from clipgauge.language.detect import detect_languages
    from clipgauge.language.flores import DEFAULT_FLORES, to_flores
    from clipgauge.pipeline.plan import ScoreOptions
    from clipgauge.runs import score

    name, checkpoint, model, preprocess = nllb
    rows = [("kırmızı bir kedi", "tr"), ("kırmızı bir kedi", "tur_Latn"), ("a red cat on a blue mat", ""),
            ("eine rote Katze im Garten", None), ("красная кошка", "klingon"), ("kırmızı bir kedi", "en")]
    lines = []
    for i, (prompt, language) in enumerate(rows):
        random_rgb(i).save(tmp_path / f"{i}.png")
        row = {"image": f"{i}.png", "prompt": prompt}
        if language is not None:
            row["language"] = language
        lines.append(json.dumps(row, ensure_ascii=False))
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = score(tmp_path / "m.jsonl", tmp_path / "out.jsonl",
                   ScoreOptions(model=f"open_clip:{name}:{checkpoint}", device="cpu", language=False), shard_size=2)
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(out) == len(rows)
    assert out[4]["error"] and "unknown language 'klingon'" in out[4]["error"] and out[4]["cosine"] is None
    detected = [to_flores(d.code) or DEFAULT_FLORES for d in detect_languages([rows[2][0], rows[3][0]])]
    codes = ["tur_Latn", "tur_Latn", detected[0], detected[1], None, "eng_Latn"]
    keep = [i for i in range(len(rows)) if i != 4]
    text = _nllb_reference(model, _nllb_folder(name, checkpoint), [rows[i][0] for i in keep], [codes[i] for i in keep])
    with torch.no_grad():
        image = _unit(model.encode_image(torch.stack([preprocess(random_rgb(i)) for i in keep])))
    expected = (text * image).sum(-1)
    np.testing.assert_allclose([out[i]["cosine"] for i in keep], expected, atol=ATOL, rtol=0)
    assert all(out[i]["error"] is None for i in keep)
    languages = result.summary["provenance"]["text"]["languages"]  # every row, not only the first part's
    assert languages["sources"]["column"] == 3 and sum(languages["codes"].values()) == 5


# --------------------------------------------------------------------------------------------- M-CLIP
@pytest.fixture(scope="module")
def mclip(tmp_path_factory):
    return save_tiny_mclip(tmp_path_factory.mktemp("mclip"), num_dims=16)


def test_mclip_matches_the_published_forward(mclip, hf_model_dir):
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    scorer = Scorer(f"mclip:{mclip},image={hf_model_dir}", device="cpu", batch_size=4)
    assert scorer.encoder.family == "mclip" and not scorer.encoder.needs_language
    assert scorer.encoder.languages == "multilingual"
    # the forward of multilingual_clip.pt_multilingual_clip.MultilingualCLIP, written out
    config = json.loads((mclip / "config.json").read_text())
    state = torch.load(mclip / "pytorch_model.bin", weights_only=True)
    transformer = XLMRobertaModel(XLMRobertaConfig.from_pretrained(config["modelBase"])).eval()
    transformer.load_state_dict({k[12:]: v for k, v in state.items()
                                 if k.startswith("transformer.") and not k.endswith("position_ids")})
    tok = AutoTokenizer.from_pretrained(str(mclip))
    with torch.no_grad():
        txt_tok = tok(PROMPTS, padding=True, return_tensors="pt")
        embs = transformer(**txt_tok)[0]
        att = txt_tok["attention_mask"]
        embs = (embs * att.unsqueeze(2)).sum(dim=1) / att.sum(dim=1)[:, None]
        ref = _unit(embs @ state["LinearTransformation.weight"].T + state["LinearTransformation.bias"])
    got = scorer.embed_texts(PROMPTS)
    np.testing.assert_allclose(got, ref, atol=ATOL, rtol=0)
    try:  # and the package's own forward, where it installs (it builds its transformer with from_pretrained)
        from multilingual_clip.Config_MCLIP import MCLIPConfig
        from multilingual_clip.pt_multilingual_clip import MultilingualCLIP
    except ImportError:
        return
    own = MultilingualCLIP(MCLIPConfig.from_pretrained(str(mclip))).eval()
    own.load_state_dict({k: v for k, v in state.items() if not k.endswith("position_ids")})
    with torch.no_grad():
        np.testing.assert_allclose(got, _unit(own.forward(PROMPTS, tok)), atol=ATOL, rtol=0)


def test_mclip_images_are_the_paired_clips(mclip, hf_model_dir):
    from transformers import CLIPImageProcessorPil, CLIPModel

    scorer = Scorer(f"mclip:{mclip},image=hf:{hf_model_dir}", device="cpu")
    images = [random_rgb(i) for i in range(2)]
    model = CLIPModel.from_pretrained(hf_model_dir).eval()
    px = CLIPImageProcessorPil.from_pretrained(hf_model_dir)(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref = _unit(model.get_image_features(pixel_values=px).pooler_output)
    np.testing.assert_allclose(scorer.embed_images(images), ref, atol=ATOL, rtol=0)
    assert scorer.provenance()["preprocessing"]["image_tower"] == f"hf:{hf_model_dir}"


def test_mclip_errors_are_one_line(mclip, hf_model_dir, tmp_path):
    from clipgauge.encoders import parse_model_spec, resolve_encoder
    from clipgauge.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no known image tower for M-CLIP model"):
        parse_model_spec(f"mclip:{mclip}")
    with pytest.raises(ModelLoadError, match="unknown model"):
        parse_model_spec(f"mclip:{mclip},image=nonsense spec")
    with pytest.raises(ModelLoadError, match="lacks modelBase"):
        resolve_encoder(f"mclip:{hf_model_dir},image=demo")  # a CLIP folder is not an M-CLIP one
    narrow = save_tiny_mclip(tmp_path / "narrow", num_dims=8)
    with pytest.raises(ModelLoadError, match="embeds texts in 8 dimensions but the image tower .* in 16"):
        resolve_encoder(f"mclip:{narrow},image={hf_model_dir}")


# --------------------------------------------------------------------------------------------- the README table
def test_every_multilingual_spec_in_the_readme_parses():
    from clipgauge.encoders import parse_model_spec

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Multilingual models", 1)[1].split("\n## ", 1)[0]
    specs = [s for s in re.findall(r"^\| `([^`]+)`", section, flags=re.M) if s != "--model"]
    assert len(specs) >= 6
    families = {parse_model_spec(s).family for s in specs}
    assert families == {"open_clip", "mclip"}
