"""Build small, real CLIP models for tests, benchmarks and the demo trainer (formerly ``clipgauge.testing``).

Not part of the installed package: ``tests/conftest.py`` puts ``tools/`` on ``sys.path``, scripts in
``tools/`` import it as a sibling, ``benchmarks/`` add ``tools/`` themselves.

Nothing here is mocked: the tokenizer is CLIP's real byte-level BPE (built from the
``bpe_simple_vocab_16e6.txt.gz`` vocabulary that ``open_clip_torch`` ships), and the
models are real ``transformers.CLIPModel`` / ``open_clip`` models with random weights,
saved to a folder exactly the way users' models are saved.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

#: Number of BPE merges used by CLIP (vocab = 256 bytes + 256 ``</w>`` + merges + 2 specials).
CLIP_NUM_MERGES = 49152 - 256 - 2
CLIP_VOCAB_SIZE = 49408


def clip_bpe_vocab_path() -> Path:
    """Path of CLIP's ``bpe_simple_vocab_16e6.txt.gz`` as shipped by ``open_clip_torch`` (or the copy named by
    ``CLIPGAUGE_BPE_VOCAB``, for machines without open_clip: ``benchmarks/gpu_suite.sh`` carries one)."""
    if os.environ.get("CLIPGAUGE_BPE_VOCAB"):
        return Path(os.environ["CLIPGAUGE_BPE_VOCAB"])
    try:
        import open_clip
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "building a CLIP tokenizer needs the BPE vocabulary shipped by open_clip_torch: "
            "pip install 'clipgauge[openclip]'"
        ) from exc
    return Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_clip_tokenizer_files(folder: str | Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` of the real CLIP tokenizer (49,408 tokens) to *folder*."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(clip_bpe_vocab_path()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : CLIP_NUM_MERGES + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == CLIP_VOCAB_SIZE
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    return folder


def save_clip_tokenizer(folder: str | Path, model_max_length: int = 77):
    """Save a ``transformers.CLIPTokenizer`` built from the real CLIP vocabulary into *folder*."""
    from transformers import CLIPTokenizer

    folder = write_clip_tokenizer_files(folder)
    tok = CLIPTokenizer(
        vocab=str(folder / "vocab.json"),
        merges=str(folder / "merges.txt"),
        model_max_length=model_max_length,
    )
    tok.save_pretrained(folder)
    return tok


def save_tiny_hf_clip(
    folder: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    projection_dim: int = 16,
    layers: int = 2,
    image_size: int = 224,
    patch_size: int = 32,
    eos_token_id: int | None = None,
    max_position_embeddings: int = 77,
) -> Path:
    """Save a small random ``CLIPModel`` plus the real CLIP tokenizer and image processor to *folder*.

    The folder loads with ``CLIPModel.from_pretrained`` / ``CLIPProcessor.from_pretrained``
    exactly like ``openai/clip-vit-*`` downloads do. *max_position_embeddings* is the text context (248 for
    Long-CLIP in transformers format); the saved tokenizer always says 77, as those conversions' tokenizers do.
    Returns the folder.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    folder = Path(folder)
    tok = save_clip_tokenizer(folder)
    text_cfg = dict(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id if eos_token_id is None else eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision_cfg = dict(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
    )
    config = CLIPConfig(text_config=text_cfg, vision_config=vision_cfg, projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(folder)
    return folder


TINY_OPENCLIP_ARCH = "clipgauge-tiny-test"


def register_tiny_openclip_arch(folder: str | Path, name: str = TINY_OPENCLIP_ARCH, context_length: int = 77) -> str:
    """Register a small ViT CLIP architecture with open_clip (uses its real BPE tokenizer) with a text context of
    *context_length* tokens."""
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "head_width": 8, "patch_size": 32},
        "text_cfg": {"context_length": context_length, "vocab_size": CLIP_VOCAB_SIZE, "width": 32, "heads": 4,
                     "layers": 2},
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    open_clip.add_model_config(path)
    return name


def save_tiny_openclip(folder: str | Path, *, seed: int = 0, fmt: str = "safetensors") -> Path:
    """Register the tiny open_clip architecture and save a random checkpoint; returns its path."""
    import open_clip
    import torch

    folder = Path(folder)
    arch = register_tiny_openclip_arch(folder)
    torch.manual_seed(seed)
    model = open_clip.create_model(arch)
    state = model.state_dict()
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = folder / "open_clip_model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = folder / "open_clip_model.pt"
        torch.save(state, path)
    return path
