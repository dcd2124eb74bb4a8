"""Models that ship their own code (``auto_map``), the way ``jinaai/jina-clip-v2`` does: loaded only when trusted.

The fixture is a real remote-code model folder: ``configuration_tinydual.py`` and ``modeling_tinydual.py`` written
here, ``config.json`` naming them in ``auto_map``, loaded by transformers' own dynamic-module machinery. Its API
is jina-clip's: ``get_text_features(input_ids)`` (the padding mask derived from the pad token),
``get_image_features(pixel_values)``, and ``encode_text`` / ``encode_image`` that tokenise (padding, truncation,
``max_length``), run those and L2-normalise — the reference clipgauge is compared with. The tokenizer is CLIP's
real BPE tokenizer saved with ``model_max_length=128``: the context comes from the model, not 77.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import random_rgb

CONFIGURATION = '''
from transformers import PretrainedConfig


class TinyDualConfig(PretrainedConfig):
    model_type = "tiny_dual_clip"

    def __init__(self, vocab_size=49408, width=32, embed_dim=16, patch=16, max_position_embeddings=128,
                 pad_token_id=49407, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.width = width
        self.embed_dim = embed_dim
        self.patch = patch
        self.max_position_embeddings = max_position_embeddings
'''

MODELING = '''
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoImageProcessor, AutoTokenizer, BatchEncoding, BatchFeature, PreTrainedModel

from .configuration_tinydual import TinyDualConfig


class TinyDualModel(PreTrainedModel):
    config_class = TinyDualConfig

    def __init__(self, config):
        super().__init__(config)
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.width)
        self.text_norm = nn.LayerNorm(config.width)
        self.text_mlp = nn.Sequential(nn.Linear(config.width, 2 * config.width), nn.GELU(),
                                      nn.Linear(2 * config.width, config.width))
        self.text_projection = nn.Linear(config.width, config.embed_dim, bias=False)
        self.patch_embedding = nn.Conv2d(3, config.width, config.patch, config.patch)
        self.vision_norm = nn.LayerNorm(config.width)
        self.visual_projection = nn.Linear(config.width, config.embed_dim, bias=False)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.2)

    def get_text_features(self, input_ids=None, *_, **__):
        x = input_ids.input_ids if isinstance(input_ids, BatchEncoding) else input_ids
        mask = (x != self.config.pad_token_id).float()[..., None]
        pos = torch.arange(x.shape[1], device=x.device)
        h = self.token_embedding(x) + self.position_embedding(pos)[None]
        h = h + self.text_mlp(self.text_norm(h))
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.text_projection(pooled)

    def get_image_features(self, pixel_values=None, *_, **__):
        x = pixel_values.pixel_values if isinstance(pixel_values, BatchFeature) else pixel_values
        h = self.patch_embedding(x).flatten(2).mean(-1)
        return self.visual_projection(self.vision_norm(h))

    @torch.inference_mode()
    def encode_text(self, sentences, max_length=512):
        tokenizer = AutoTokenizer.from_pretrained(self.config._name_or_path, trust_remote_code=True)
        tokens = tokenizer(sentences, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        return F.normalize(self.get_text_features(input_ids=tokens), p=2, dim=1).numpy()

    @torch.inference_mode()
    def encode_image(self, images):
        processor = AutoImageProcessor.from_pretrained(self.config._name_or_path, trust_remote_code=True)
        pixels = processor([im.convert("RGB") for im in images], return_tensors="pt")
        return F.normalize(self.get_image_features(pixels), p=2, dim=1).numpy()
'''


@pytest.fixture(scope="module")
def remote_dir(tmp_path_factory):
    import torch
    from tiny_clip import save_clip_tokenizer
    from transformers import AutoConfig, AutoModel, CLIPImageProcessorPil

    folder = tmp_path_factory.mktemp("tiny_remote")
    (folder / "configuration_tinydual.py").write_text(CONFIGURATION, encoding="utf-8")
    (folder / "modeling_tinydual.py").write_text(MODELING, encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "tiny_dual_clip", "architectures": ["TinyDualModel"],
        "auto_map": {"AutoConfig": "configuration_tinydual.TinyDualConfig",
                     "AutoModel": "modeling_tinydual.TinyDualModel"}}), encoding="utf-8")
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    torch.manual_seed(0)
    model = AutoModel.from_config(config, trust_remote_code=True)
    model.save_pretrained(folder)
    save_clip_tokenizer(folder, model_max_length=128)
    CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(folder)
    assert "auto_map" in json.loads((folder / "config.json").read_text())
    return folder


def test_needs_trust_remote_code_one_line(remote_dir, tmp_path, capsys):
    from clipgauge import Scorer
    from clipgauge.cli import main
    from clipgauge.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"runs its own code \(modeling_tinydual.TinyDualModel.*"
                                             r"trust_remote_code=True"):
        Scorer(f"hf:{remote_dir}", device="cpu")
    random_rgb(0).save(tmp_path / "a.png")
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": "a cat"}) + "\n")
    code = main(["score", str(tmp_path / "m.jsonl"), "--model", f"hf:{remote_dir}", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "--trust-remote-code" in err and len(err.strip().splitlines()) == 1


def test_trusted_remote_model_matches_its_own_encoders(remote_dir, tmp_path, capsys):
    from transformers import AutoModel

    from clipgauge import Scorer
    from clipgauge.cli import main

    model = AutoModel.from_pretrained(remote_dir, trust_remote_code=True).eval()
    prompts = ["a photo of a cat", " ".join(["red"] * 100), " ".join(["blue"] * 200)]  # 4, 102 and 202 tokens
    images = [random_rgb(s, size=(80, 100)) for s in range(3)]

    scorer = Scorer(f"hf:{remote_dir}", device="cpu", trust_remote_code=True, batch_size=2)
    assert scorer.context_length == 128
    assert scorer.truncated(prompts) == [False, False, True]
    text = scorer.embed_texts(prompts)
    assert np.abs(text - model.encode_text(prompts, max_length=128)).max() < 1e-4
    image = scorer.embed_images(images)
    assert np.abs(image - model.encode_image(images)).max() < 1e-4
    prov = scorer.provenance()
    assert prov["model"]["family"] == "transformers-remote-code" and prov["model"]["context_length"] == 128
    assert "TinyDualModel" in prov["preprocessing"]["model_class"]

    for i, im in enumerate(images):
        im.save(tmp_path / f"{i}.png")
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"image": f"{i}.png", "prompt": p}) + "\n"
                                              for i, p in enumerate(prompts)))
    out = tmp_path / "out.jsonl"
    code = main(["score", str(tmp_path / "m.jsonl"), "--model", f"hf:{remote_dir}", "--device", "cpu",
                 "--trust-remote-code", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    want = (model.encode_image(images) * model.encode_text(prompts, max_length=128)).sum(axis=1)
    assert np.allclose([r["cosine"] for r in rows], want, atol=1e-4)
    assert [r["truncated"] for r in rows] == [False, False, True]
