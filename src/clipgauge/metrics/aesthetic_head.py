"""LAION aesthetic predictor heads: finding the file, reading it safely, telling the published versions apart by
their keys, and running them.

The published heads are plain PyTorch state dicts (``torch.save(model.state_dict())``) of a small head on the
L2-normalised CLIP image embedding:

===========  ==========================================  ==============================================
version      keys                                        layers (``nn.Sequential`` indices)
===========  ==========================================  ==============================================
v1-linear    ``weight``, ``bias``                        ``nn.Linear(D, 1)`` (LAION-AI/aesthetic-predictor,
                                                         ``sa_0_4_vit_{l_14,b_32,b_16}_linear.pth``)
v2-linear    ``layers.{0,2,4,6,7}.{weight,bias}``        0 Linear(D,1024), 1 Dropout, 2 Linear(1024,128),
                                                         3 Dropout, 4 Linear(128,64), 5 Dropout,
                                                         6 Linear(64,16), 7 Linear(16,1); no activation
                                                         (``sac+logos+ava1-l14-linearMSE.pth``)
v2-relu      ``layers.{0,3,6,9,11}.{weight,bias}``       0 Linear, 1 ReLU, 2 Dropout, 3 Linear, 4 ReLU,
                                                         5 Dropout, 6 Linear, 7 ReLU, 8 Dropout,
                                                         9 Linear, 10 ReLU, 11 Linear
                                                         (``ava+logos-l14-reluMSE.pth``)
===========  ==========================================  ==============================================

(christophschuhmann/improved-aesthetic-predictor: ``simple_inference.py`` and ``avaclipmlp_inf_wds-relu.py``.)
Dropout is the identity at inference. The hidden widths are read from the file (1024/128/64/16 in the published
v2 files); the input width D must be the CLIP model's embedding width (768 for ViT-L/14, 512 for ViT-B).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.hub import resolve_weight_file
from ..encoders.weights import read_weights
from ..errors import ModelLoadError, UsageError

#: Where the default (v2) head is published on the Hugging Face hub: a byte-for-byte mirror of
#: ``sac+logos+ava1-l14-linearMSE.pth`` from christophschuhmann/improved-aesthetic-predictor on GitHub.
DEFAULT_HEAD_REPO = "camenduru/improved-aesthetic-predictor"
DEFAULT_HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
DEFAULT_HEAD = f"{DEFAULT_HEAD_REPO}/{DEFAULT_HEAD_FILE}"

#: The demo CLIP's aesthetic head (trained by ``tools/``), when it is installed
DEMO_HEAD = Path(__file__).resolve().parents[1] / "demo" / "aesthetic" / "head.safetensors"

#: The OpenAI CLIP each published head was trained on, by file name (the default backbone for that head)
PUBLISHED_BACKBONES = {
    "sac+logos+ava1-l14-linearMSE.pth": "openai/clip-vit-large-patch14",
    "ava+logos-l14-linearMSE.pth": "openai/clip-vit-large-patch14",
    "ava+logos-l14-reluMSE.pth": "openai/clip-vit-large-patch14",
    "sa_0_4_vit_l_14_linear.pth": "openai/clip-vit-large-patch14",
    "sa_0_4_vit_b_32_linear.pth": "openai/clip-vit-base-patch32",
    "sa_0_4_vit_b_16_linear.pth": "openai/clip-vit-base-patch16",
}
_WIDTH_HINT = {768: "openai/clip-vit-large-patch14", 512: "openai/clip-vit-base-patch32 or -patch16"}


@dataclass(frozen=True)
class HeadFormat:
    """One published key layout: the prefixes of its linear layers and which are followed by a ReLU."""

    version: str
    prefixes: tuple[str, ...]
    relu: tuple[bool, ...]
    layout: str

    def keys(self) -> set[str]:
        return {f"{p}{k}" for p in self.prefixes for k in ("weight", "bias")}


FORMATS = (
    HeadFormat("v1-linear", ("",), (False,), "weight, bias (Linear D->1)"),
    HeadFormat("v2-linear", tuple(f"layers.{i}." for i in (0, 2, 4, 6, 7)), (False,) * 5,
               "layers.0/2/4/6/7.{weight,bias} (Linear, Dropout between, no activation)"),
    HeadFormat("v2-relu", tuple(f"layers.{i}." for i in (0, 3, 6, 9, 11)), (True, True, True, True, False),
               "layers.0/3/6/9/11.{weight,bias} (Linear, ReLU after the first four)"),
)


@dataclass
class AestheticHead:
    """A loaded head: its version, its linear layers (float32 torch tensors) and where it came from."""

    version: str
    layout: str
    weights: list[Any]
    biases: list[Any]
    relu: tuple[bool, ...]
    path: Path
    sha256: str
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def widths(self) -> list[int]:
        """Input width, every hidden width, and the output width (1)."""
        return [int(self.weights[0].shape[1])] + [int(w.shape[0]) for w in self.weights]

    @property
    def input_width(self) -> int:
        return self.widths[0]

    def check_width(self, width: int, model: str) -> None:
        """:class:`UsageError` (one line naming the head's version, keys and widths) when the embeddings of *model*
        are *width* wide and the head takes another width."""
        if width == self.input_width:
            return
        key = "weight" if self.version == "v1-linear" else "layers.0.weight"
        shape = "x".join(str(s) for s in self.weights[0].shape)
        hint = _WIDTH_HINT.get(self.input_width)
        hint = f" (for {self.input_width}: {hint})" if hint else ""
        raise UsageError(f"aesthetic head {self.path} ({self.version}, {key} is {shape}: input width "
                         f"{self.input_width}) does not fit model '{model}', whose image embeddings are {width} "
                         f"wide; give model= the CLIP the head was trained on{hint}")

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Scores (float64, shape (N,)) of (N, D) L2-normalised float32 embeddings, as the published MLP computes
        them in float32: ``x = x @ W.T + b`` per linear layer, ReLU where the format has one, dropout skipped."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        with torch.inference_mode():
            for weight, bias, relu in zip(self.weights, self.biases, self.relu):
                x = torch.nn.functional.linear(x, weight, bias)
                if relu:
                    x = torch.relu(x)
        return x[:, 0].double().numpy()

    def describe(self) -> dict[str, Any]:
        """Provenance of the head: version, key layout, widths, file, SHA-256 and where it was found."""
        return {"version": self.version, "layout": self.layout, "widths": self.widths,
                "file": str(self.path), "sha256": self.sha256, **self.source}


# ------------------------------------------------------------------------------------------------ finding it
def resolve_head(text: str) -> tuple[Path, dict[str, Any]]:
    """``(local path, source description)`` of a head given as ``demo``, a local file, or a hub file
    ``ORG/NAME/FILE`` (downloaded into the Hugging Face cache). One-line errors when it cannot be found."""
    if text == "demo":
        if not DEMO_HEAD.is_file():
            raise ModelLoadError(f"the demo aesthetic head is not installed ({DEMO_HEAD} is missing)")
        return DEMO_HEAD, {"source": "demo"}
    return resolve_weight_file(text, f"aesthetic head '{text}'", "sac+logos+ava1-l14-linearMSE.pth, or demo")


# ------------------------------------------------------------------------------------------------ reading it
def read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a head file: safetensors, or a plain state dict read with ``torch.load(weights_only=True)``
    (no code from the file runs). :class:`UsageError` when it is neither."""
    import torch

    state = read_weights(path, "aesthetic head")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = type(state).__name__ if not isinstance(state, dict) else "a dict that is not only tensors"
        raise UsageError(f"aesthetic head {path} holds {what}, not a state dict of tensors")
    return state


def detect(state: dict[str, Any], path: Path, sha256: str, source: dict[str, Any]) -> AestheticHead:
    """The head a state dict holds, by its keys; :class:`UsageError` naming the keys and shapes found when they
    match no published layout, or when the layer widths do not chain to one output."""
    found = set(state)
    fmt = next((f for f in FORMATS if f.keys() == found), None)
    if fmt is None:
        shown = ", ".join(f"{k} {_shape(state[k])}" for k in sorted(found, key=_natural)[:12])
        more = f" and {len(found) - 12} more" if len(found) > 12 else ""
        expected = "; ".join(f"{f.version}: {f.layout}" for f in FORMATS)
        raise UsageError(f"aesthetic head {path} has keys {shown or 'none'}{more}; a LAION aesthetic head has "
                         f"{expected}")
    weights = [state[f"{p}weight"].detach().float().contiguous() for p in fmt.prefixes]
    biases = [state[f"{p}bias"].detach().float().contiguous() for p in fmt.prefixes]
    width = None
    for prefix, w, b in zip(fmt.prefixes, weights, biases):
        if w.ndim != 2 or b.ndim != 1 or b.shape[0] != w.shape[0] or (width is not None and w.shape[1] != width):
            raise UsageError(f"aesthetic head {path} ({fmt.version}): {prefix}weight is {_shape(w)} and "
                             f"{prefix}bias is {_shape(b)}, which do not follow the previous layer "
                             f"({'input' if width is None else f'width {width}'})")
        width = int(w.shape[0])
    if width != 1:
        raise UsageError(f"aesthetic head {path} ({fmt.version}) ends with {width} outputs, not 1 score")
    return AestheticHead(fmt.version, fmt.layout, weights, biases, fmt.relu, path, sha256, dict(source))


def _shape(t: Any) -> str:
    return "x".join(str(int(s)) for s in t.shape) if getattr(t, "ndim", 0) else "scalar"


def _natural(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]
