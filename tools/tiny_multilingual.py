"""Small, real multilingual text towers for tests: OpenCLIP XLM-R and NLLB-CLIP, and M-CLIP.

Nothing is mocked. Each tokenizer is a real SentencePiece model trained here on a few hundred sentences in
several languages, loaded by transformers' own ``XLMRobertaTokenizer`` / ``NllbTokenizer`` (the NLLB one with
the 202 FLORES-200 language tokens the published tokenizer has), and saved with ``save_pretrained``. The models
are transformers' ``XLMRobertaModel`` / ``M2M100`` encoder with tiny dimensions and random weights, saved in the
published layouts:

* OpenCLIP: a model config (``text_cfg.hf_model_name`` / ``hf_tokenizer_name`` pointing at the local folder, as
  ``xlm-roberta-base-ViT-B-32.json`` and ``nllb-clip-base.json`` point at the hub) registered with
  ``open_clip.add_model_config``, and an ``open_clip_model.safetensors`` checkpoint of the whole CLIP;
* M-CLIP: the ``multilingual_clip`` package's ``MultilingualCLIP`` layout — ``config.json`` of model type
  ``M-CLIP`` (``modelBase``, ``transformerDimensions``, ``numDims``), ``pytorch_model.bin`` with keys
  ``transformer.*`` and ``LinearTransformation.{weight,bias}``, and the tokenizer files beside them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

_WORDS = {
    "en": "a photo of a red cat sitting on a blue mat in the garden at night with the dog",
    "de": "ein Foto einer roten Katze die auf einer blauen Matte im Garten in der Nacht mit dem Hund sitzt",
    "tr": "gece bahçede köpekle birlikte mavi bir paspasın üzerinde oturan kırmızı bir kedinin fotoğrafı",
    "fr": "une photo d'un chat rouge assis sur un tapis bleu dans le jardin la nuit avec le chien",
    "ru": "фотография красной кошки сидящей на синем коврике в саду ночью с собакой",
    "ja": "夜の庭で犬と一緒に青いマットの上に座っている赤い猫の写真",
}


def training_sentences(n: int = 300) -> list[str]:
    """*n* short sentences mixing the words of several languages (deterministic)."""
    out = []
    for i in range(n):
        words = list(_WORDS.values())[i % len(_WORDS)].split()
        k = 3 + i % 7
        start = (i * 5) % max(1, len(words) - k)
        out.append(" ".join(words[start:start + k]))
    return out


def train_sentencepiece(folder: str | Path, filename: str = "sentencepiece.bpe.model", vocab_size: int = 200) -> Path:
    """Train a tiny unigram SentencePiece model (as XLM-R's and NLLB's are) into *folder*/*filename*."""
    import sentencepiece as spm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(training_sentences()), model_writer=buf,
                                   vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
                                   hard_vocab_limit=False, minloglevel=2)
    path = folder / filename
    path.write_bytes(buf.getvalue())
    return path


def save_xlmr_tokenizer(folder: str | Path, model_max_length: int = 512):
    """An ``XLMRobertaTokenizer`` from a SentencePiece model trained here, saved to *folder*; returns it."""
    from transformers import XLMRobertaTokenizer

    folder = Path(folder)
    train_sentencepiece(folder)
    tok = XLMRobertaTokenizer.from_pretrained(str(folder), model_max_length=model_max_length)
    tok.save_pretrained(str(folder))
    return tok


def save_nllb_tokenizer(folder: str | Path):
    """An ``NllbTokenizer`` (SentencePiece trained here + the 202 FLORES-200 language tokens), saved to *folder*."""
    from transformers import NllbTokenizer
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    folder = Path(folder)
    train_sentencepiece(folder)
    tok = NllbTokenizer.from_pretrained(str(folder), additional_special_tokens=list(FAIRSEQ_LANGUAGE_CODES))
    tok.save_pretrained(str(folder))
    return tok


def save_tiny_xlmr(folder: str | Path, *, seed: int = 0, max_positions: int = 40, weights: bool = False):
    """A tiny ``XLMRobertaModel`` config (and, with *weights*, random weights) plus its tokenizer in *folder*."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    folder = Path(folder)
    tok = save_xlmr_tokenizer(folder, model_max_length=max_positions - 2)
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=64, max_position_embeddings=max_positions, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2)
    if weights:
        torch.manual_seed(seed)
        XLMRobertaModel(config).eval().save_pretrained(str(folder))
    else:
        config.save_pretrained(str(folder))
    return folder


def save_tiny_nllb_text(folder: str | Path):
    """A tiny NLLB (``M2M100``) config and its tokenizer in *folder* (open_clip takes the encoder)."""
    from transformers import M2M100Config

    folder = Path(folder)
    tok = save_nllb_tokenizer(folder)
    M2M100Config(vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4,
                 decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                 pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                 scale_embedding=True).save_pretrained(str(folder))
    return folder


def save_tiny_openclip_hf_text(folder: str | Path, kind: str, *, seed: int = 0) -> tuple[str, Path]:
    """Register a tiny OpenCLIP architecture whose text tower is an HF model (*kind* ``xlm-roberta`` with the mean
    pooler, as ``xlm-roberta-base-ViT-B-32``; or ``nllb`` with the CLS pooler and a linear projection, as
    ``nllb-clip-base``) and save a random checkpoint. Returns ``(architecture name, checkpoint path)``."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    text_dir = folder / f"{kind}-text"
    if kind == "xlm-roberta":
        save_tiny_xlmr(text_dir, max_positions=80)  # open_clip pads to 77 tokens; XLM-R offsets positions by 2
        text_cfg = {"hf_model_name": str(text_dir), "hf_tokenizer_name": str(text_dir),
                    "hf_pooler_type": "mean_pooler"}
    elif kind == "nllb":
        save_tiny_nllb_text(text_dir)
        text_cfg = {"hf_model_name": str(text_dir), "hf_tokenizer_name": str(text_dir), "hf_proj_type": "linear",
                    "hf_pooler_type": "cls_pooler"}
    else:
        raise ValueError(kind)
    name = f"clipgauge-tiny-{kind}-{seed}"
    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 8, "patch_size": 32},
           "text_cfg": text_cfg}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    open_clip.add_model_config(path)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained_text=False)
    checkpoint = folder / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    return name, checkpoint


def save_tiny_mclip(folder: str | Path, *, num_dims: int = 16, seed: int = 0) -> Path:
    """An M-CLIP text tower in the published layout: ``config.json`` (``model_type`` ``M-CLIP``, ``modelBase`` a
    local tiny XLM-R folder), ``pytorch_model.bin`` (``transformer.*``, ``LinearTransformation.*``, and the
    ``transformer.embeddings.position_ids`` buffer the published checkpoints carry), and the tokenizer files."""
    import torch
    from transformers import AutoModel

    folder = Path(folder)
    base = save_tiny_xlmr(folder / "base", seed=seed, weights=True)
    tok = save_xlmr_tokenizer(folder, model_max_length=38)
    transformer = AutoModel.from_pretrained(str(base))
    torch.manual_seed(seed + 1)
    width = transformer.config.hidden_size
    linear = torch.nn.Linear(width, num_dims)
    state = {f"transformer.{k}": v for k, v in transformer.state_dict().items()}
    state["transformer.embeddings.position_ids"] = torch.arange(transformer.config.max_position_embeddings)[None]
    state |= {f"LinearTransformation.{k}": v for k, v in linear.state_dict().items()}
    torch.save(state, folder / "pytorch_model.bin")
    config = {"_name_or_path": str(folder), "architectures": ["MultilingualCLIP"], "model_type": "M-CLIP",
              "modelBase": str(base), "transformerDimensions": width, "numDims": num_dims,
              "transformerDimSize": width, "imageDimSize": num_dims, "torch_dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    assert len(tok) == transformer.config.vocab_size
    return folder
