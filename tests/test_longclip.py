"""Long-CLIP's own checkpoints (``longclip:PATH``) against a reference written here from Long-CLIP's definition.

The checkpoint is a tiny random one in the exact layout of ``longclip-B.pt``: a raw state dict saved with
``torch.save``, OpenAI CLIP key names, two 248-row positional tables, the linear / attention / projection weights
in float16 as ``build_model``'s ``convert_weights`` leaves them. The reference follows
``model/model_longclip.py`` (github.com/beichenzbc/Long-CLIP) line by line: ``x = tok_emb + pe * mask1 +
pe_res * mask2``, the causal transformer (pre-LN blocks, QuickGELU), ``ln_final``, the end-of-text row,
``text_projection``; the image side is its ``VisionTransformer``; tokens are ``longclip.tokenize(truncate=True)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import random_rgb

WIDTH, LAYERS, EMBED, PATCH, RES, VOCAB, CTX = 64, 2, 32, 32, 64, 49408, 248


def _half(t: torch.Tensor) -> torch.Tensor:
    """Stored in float16, as OpenAI's and Long-CLIP's ``convert_weights`` leave these weights."""
    return t.half()


def _blocks(prefix: str, g: torch.Generator) -> dict[str, torch.Tensor]:
    sd = {}
    for i in range(LAYERS):
        p = f"{prefix}.resblocks.{i}."
        sd[p + "attn.in_proj_weight"] = _half(torch.randn(3 * WIDTH, WIDTH, generator=g) * 0.08)
        sd[p + "attn.in_proj_bias"] = _half(torch.randn(3 * WIDTH, generator=g) * 0.02)
        sd[p + "attn.out_proj.weight"] = _half(torch.randn(WIDTH, WIDTH, generator=g) * 0.08)
        sd[p + "attn.out_proj.bias"] = _half(torch.randn(WIDTH, generator=g) * 0.02)
        sd[p + "ln_1.weight"] = 1 + 0.1 * torch.randn(WIDTH, generator=g)
        sd[p + "ln_1.bias"] = 0.1 * torch.randn(WIDTH, generator=g)
        sd[p + "mlp.c_fc.weight"] = _half(torch.randn(4 * WIDTH, WIDTH, generator=g) * 0.08)
        sd[p + "mlp.c_fc.bias"] = _half(torch.randn(4 * WIDTH, generator=g) * 0.02)
        sd[p + "mlp.c_proj.weight"] = _half(torch.randn(WIDTH, 4 * WIDTH, generator=g) * 0.05)
        sd[p + "mlp.c_proj.bias"] = _half(torch.randn(WIDTH, generator=g) * 0.02)
        sd[p + "ln_2.weight"] = 1 + 0.1 * torch.randn(WIDTH, generator=g)
        sd[p + "ln_2.bias"] = 0.1 * torch.randn(WIDTH, generator=g)
    return sd


def longclip_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with exactly the keys, nesting and shapes of ``longclip-B.pt`` (small widths)."""
    g = torch.Generator().manual_seed(seed)
    grid = RES // PATCH
    sd = {
        "positional_embedding": torch.randn(CTX, WIDTH, generator=g) * 0.5,
        "positional_embedding_res": torch.randn(CTX, WIDTH, generator=g) * 0.5,
        "text_projection": _half(torch.randn(WIDTH, EMBED, generator=g) * WIDTH ** -0.5),
        "logit_scale": torch.tensor(4.6052),
        "visual.class_embedding": torch.randn(WIDTH, generator=g) * 0.1,
        "visual.positional_embedding": torch.randn(grid * grid + 1, WIDTH, generator=g) * 0.1,
        "visual.proj": _half(torch.randn(WIDTH, EMBED, generator=g) * WIDTH ** -0.5),
        "visual.conv1.weight": _half(torch.randn(WIDTH, 3, PATCH, PATCH, generator=g) * 0.02),
        "visual.ln_pre.weight": 1 + 0.1 * torch.randn(WIDTH, generator=g),
        "visual.ln_pre.bias": 0.1 * torch.randn(WIDTH, generator=g),
        "visual.ln_post.weight": 1 + 0.1 * torch.randn(WIDTH, generator=g),
        "visual.ln_post.bias": 0.1 * torch.randn(WIDTH, generator=g),
        "token_embedding.weight": torch.randn(VOCAB, WIDTH, generator=g) * 0.02,
        "ln_final.weight": 1 + 0.1 * torch.randn(WIDTH, generator=g),
        "ln_final.bias": 0.1 * torch.randn(WIDTH, generator=g),
    }
    sd.update(_blocks("transformer", g))
    sd.update(_blocks("visual.transformer", g))
    return sd


# ------------------------------------------------------------------------------------------- the reference
def _transformer(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """OpenAI CLIP's ResidualAttentionBlocks (heads = width // 64), x: (N, L, D) in float32."""
    f = {k: v.float() for k, v in sd.items()}
    n, length, d = x.shape
    heads = d // 64
    mask = torch.full((length, length), float("-inf")).triu_(1) if causal else torch.zeros(length, length)
    for i in range(LAYERS):
        p = f"{prefix}.resblocks.{i}."
        h = F.layer_norm(x, (d,), f[p + "ln_1.weight"], f[p + "ln_1.bias"], eps=1e-5)
        q, k, v = (h @ f[p + "attn.in_proj_weight"].T + f[p + "attn.in_proj_bias"]).split(d, dim=-1)
        q, k, v = (t.reshape(n, length, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // heads) ** 0.5 + mask, dim=-1) @ v
        att = att.transpose(1, 2).reshape(n, length, d)
        x = x + att @ f[p + "attn.out_proj.weight"].T + f[p + "attn.out_proj.bias"]
        h = F.layer_norm(x, (d,), f[p + "ln_2.weight"], f[p + "ln_2.bias"], eps=1e-5)
        h = h @ f[p + "mlp.c_fc.weight"].T + f[p + "mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ f[p + "mlp.c_proj.weight"].T + f[p + "mlp.c_proj.bias"]
    return x


def reference_tokenize(texts: list[str]) -> torch.Tensor:
    """``longclip.tokenize(texts, context_length=248, truncate=True)`` with OpenAI's BPE tokenizer."""
    from open_clip.tokenizer import SimpleTokenizer

    bpe = SimpleTokenizer()
    sot, eot = 49406, 49407  # <|startoftext|>, <|endoftext|> of CLIP's 49,408-token vocabulary
    out = torch.zeros(len(texts), CTX, dtype=torch.long)
    for i, text in enumerate(texts):
        tokens = [sot] + bpe.encode(text) + [eot]
        if len(tokens) > CTX:
            tokens = tokens[:CTX]
            tokens[-1] = eot
        out[i, :len(tokens)] = torch.tensor(tokens)
    return out


def reference_encode_text(sd: dict[str, torch.Tensor], text: torch.Tensor) -> torch.Tensor:
    mask1 = torch.zeros(CTX, 1)
    mask1[:20] = 1
    mask2 = torch.zeros(CTX, 1)
    mask2[20:] = 1
    x = sd["token_embedding.weight"].float()[text]
    x = x + sd["positional_embedding"].float() * mask1 + sd["positional_embedding_res"].float() * mask2
    x = _transformer(sd, "transformer", x, causal=True)
    x = F.layer_norm(x, (WIDTH,), sd["ln_final.weight"].float(), sd["ln_final.bias"].float(), eps=1e-5)
    return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ sd["text_projection"].float()


def reference_encode_image(sd: dict[str, torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
    f = {k: v.float() for k, v in sd.items()}
    x = F.conv2d(pixels, f["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    cls = f["visual.class_embedding"].expand(x.shape[0], 1, WIDTH)
    x = torch.cat([cls, x], dim=1) + f["visual.positional_embedding"]
    x = F.layer_norm(x, (WIDTH,), f["visual.ln_pre.weight"], f["visual.ln_pre.bias"], eps=1e-5)
    x = _transformer(sd, "visual.transformer", x, causal=False)
    x = F.layer_norm(x[:, 0], (WIDTH,), f["visual.ln_post.weight"], f["visual.ln_post.bias"], eps=1e-5)
    return x @ f["visual.proj"]


def reference_preprocess(image) -> torch.Tensor:
    """Long-CLIP's ``_transform(n_px)``, written out."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose([Resize(RES, interpolation=InterpolationMode.BICUBIC), CenterCrop(RES),
                    lambda im: im.convert("RGB"), ToTensor(),
                    Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])(image)


# ------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def longclip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("longclip") / "longclip-B.pt"
    torch.save(longclip_state_dict(), path)
    return path


def _unit(x: torch.Tensor) -> np.ndarray:
    return (x / x.norm(dim=-1, keepdim=True)).numpy()


def test_checkpoint_matches_two_table_reference(longclip_file):
    from clipgauge import Scorer

    words = ("a small red bicycle leans against a weathered brick wall beside a flower shop, while "
             "an old man in a green coat reads a newspaper on a wooden bench under a striped awning. ")
    prompts = ["a photo of a cat", words * 3, words * 9]  # 13, ~150 and > 248 tokens
    sd = torch.load(longclip_file, weights_only=True)
    tokens = reference_tokenize(prompts)
    ref_text = _unit(reference_encode_text(sd, tokens))
    images = [random_rgb(s, size=(90, 70)) for s in range(3)]
    ref_image = _unit(reference_encode_image(sd, torch.stack([reference_preprocess(im) for im in images])))

    scorer = Scorer(f"longclip:{longclip_file}", device="cpu", batch_size=2)
    assert scorer.context_length == 248
    text = scorer.embed_texts(prompts)
    assert np.abs(text - ref_text).max() < 1e-4
    assert scorer.truncated(prompts) == [False, False, True]
    # rows 20.. of the table really come from positional_embedding_res: the first table alone gives other numbers
    only_first = {**sd, "positional_embedding_res": sd["positional_embedding"]}
    assert np.abs(_unit(reference_encode_text(only_first, tokens))[1] - text[1]).max() > 1e-3
    image = scorer.embed_images(images)
    assert np.abs(image - ref_image).max() < 1e-4
    cos = scorer.score(images, prompts)
    assert np.allclose(cos, (ref_image * ref_text).sum(axis=1), atol=1e-4)
    prov = scorer.provenance()
    assert prov["model"]["family"] == "longclip" and prov["model"]["context_length"] == 248


def test_not_a_longclip_checkpoint_is_one_line(tmp_path):
    from clipgauge.encoders import resolve_encoder
    from clipgauge.errors import ModelLoadError

    sd = longclip_state_dict()
    del sd["positional_embedding_res"]
    path = tmp_path / "plain.pt"
    torch.save(sd, path)
    with pytest.raises(ModelLoadError, match="not a Long-CLIP checkpoint.*positional_embedding_res"):
        resolve_encoder(f"longclip:{path}")
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_encoder(f"longclip:{tmp_path / 'missing.pt'}")


def test_listed_as_a_model_family(capsys):
    from clipgauge.cli import main

    assert main(["metrics"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "longclip longclip:" in out and "(needs clipgauge[openclip])" in out  # printed as text, not markup
