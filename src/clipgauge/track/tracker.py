"""``CLIPTracker``: CLIP scores of validation images while a model trains, written where the loss goes.

The CLIP model is loaded once (on CPU); at the first evaluation it moves to the scoring device and the library's
prompts are encoded once (cached for the run). Each :meth:`CLIPTracker.log` scores a batch of images against their
prompts through the scoring step of ``clipgauge score`` (the ``clip`` metric, :mod:`clipgauge.track.metrics`), so the
numbers are identical, and writes ``clip/mean``, ``/min``, ``/max``, ``/std``, ``/n``, ``clip/prompt/NAME`` (cosine
in the ``angle`` scale, which adds ``clip/angle_mean``, ``_min``, ``_max``, ``_std`` in degrees) to every writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

# a sibling module by its full name, so this module does not import its package's __init__ back
import clipgauge.track.distributed as dist

from ..decode import load_image
from ..encoders import DEFAULT_MODEL, Encoder
from ..errors import UsageError
from ..scoring.device import check_precision, resolve_device
from ..scoring.scales import check_scale, to_scale
from ..scoring.scorer import Embedder
from ..scoring.settings import ScorerSettings
from .alerts import Alert, AlertMonitor, Rule, as_rules
from .distribution import DistributionTracking
from .metrics import TrackedMetrics, metric_stats
from .prompts import PromptLibrary, load_prompt_library
from .result import Extreme, PromptScores, TrackResult, summary_stats
from .reward_log import log_reward as _log_reward
from .writers import make_writer

logger = logging.getLogger("clipgauge.track")

THUMBNAIL = 128  # side in pixels of the best/worst thumbnails kept with a result


class CLIPTracker:
    """Score generated validation images during training and write the scores to TensorBoard, W&B, CSV, JSONL.

    Args:
        model: a model spec (``openai/clip-vit-large-patch14``, ``hf:DIR``, ``open_clip:ARCH:PRETRAINED``,
            ``demo`` …), a :class:`~clipgauge.Scorer` (any :class:`~clipgauge.scoring.scorer.Embedder`) or an
            :class:`~clipgauge.encoders.Encoder`. Loaded once.
        prompts: the validation prompt library: ``"default"``, ``"default:CATEGORY,…"``, ``"parti[:CATEGORY]"``,
            a JSON/TXT file, a list of prompts or a ``{name: prompt}`` dict (see :mod:`clipgauge.track.prompts`).
        device: where to score: ``auto`` (this process's current CUDA device if any, else CPU — resolved at
            each evaluation, so it is right under torch.distributed), ``cpu``, ``cuda``, ``cuda:N``. Default:
            ``auto``, or the given Scorer's own device.
        writers: where results go: specs (``"tensorboard:DIR"``, ``"wandb[:PROJECT]"``, ``"csv:PATH"``,
            ``"jsonl:PATH"``), a ``SummaryWriter``, a W&B run, or :class:`~clipgauge.track.writers.Writer` objects.
            Writers are made on rank 0 only, at the first evaluation.
        scale: ``cosine`` (default, [-1, 1]), ``torchmetrics`` (100 × cos), ``clip-s`` (2.5 × max(cos, 0)), ``angle``.
        offload: keep the CLIP model on CPU between evaluations and move it to the device only while scoring
            (frees its GPU memory for training; each evaluation then pays one host-to-device copy).
        alerts: rules (:mod:`clipgauge.track.alerts` objects or strings like ``"floor:0.25@1000"``,
            ``"drop:0.05!"``, ``"plateau:5"``); ``on_alert`` is called with each :class:`Alert` that fires (on
            every rank under torch.distributed, so that all ranks can act alike; the warning is logged on rank 0).
        distributed: under torch.distributed, ``gather`` (every rank scores its own images; the scores of all
            ranks are gathered) or ``rank0`` (only rank 0 scores; the others' images are ignored). Either way
            every rank gets the same result and stop signal, and only rank 0 writes.
        n_extremes: how many best and worst images to keep (as thumbnails) for the image grid; 0 for none.
        per_prompt: include ``clip/prompt/NAME`` (mean score of each prompt's images) in the metrics.
        prefix: the metric-name prefix (``clip`` → ``clip/mean``).
        metrics: other metrics to log beside the CLIP score (``"aesthetic"``, ``"pickscore"``, …, as ``clipgauge
            score --metric`` takes them): each score column ``NAME`` as ``NAME/mean``, ``/min``, ``/max``, ``/std``,
            ``/n``. A metric on the tracker's own model shares it.
        reference_stats: a reference-statistics file (``clipgauge distance --save-reference``): each evaluation also
            writes ``PREFIX/cmmd`` (to its embeddings) and ``PREFIX/vendi`` (:mod:`clipgauge.track.distribution`).
        settings, keyword arguments: the model's settings (``batch_size``, ``precision``, ``prompt_prefix``,
            ``num_workers``, ``trust_remote_code``, the image limits …), declared once in
            :class:`~clipgauge.scoring.settings.ScorerSettings`, as for :class:`~clipgauge.Scorer`. The model is
            loaded on CPU and moved to ``device`` (above) to score, at ``precision``. Ignored for a given Scorer.
    """

    def __init__(
        self,
        model: str | Embedder | Encoder = DEFAULT_MODEL,
        prompts: Any = "default",
        *,
        device: str | torch.device | None = None,
        writers: Any = (),
        scale: str = "cosine",
        offload: bool = False,
        alerts: Sequence[Rule | str] | Rule | str | None = None,
        on_alert: Callable[[Alert], Any] | None = None,
        distributed: str = "gather",
        n_extremes: int = 4,
        per_prompt: bool = True,
        prefix: str = "clip",
        metrics: Sequence[str] = (),
        reference_stats: str | Path | None = None,
        settings: ScorerSettings | None = None,
        **scorer_settings: Any,
    ) -> None:
        self.scale = check_scale(scale)
        self.base_scale = "cosine" if self.scale == "angle" else self.scale
        if distributed not in dist.DIST_MODES:
            raise UsageError(f"distributed must be one of {', '.join(dist.DIST_MODES)}, not '{distributed}'")
        wanted = (settings or ScorerSettings()).with_(**scorer_settings)  # TypeError for an unknown argument
        self.library: PromptLibrary = load_prompt_library(prompts)
        self._device_spec = device
        if isinstance(model, Embedder):
            self.scorer = model
            self.precision = model.precision
            if device is None:
                self._device_spec = model.device
        else:
            from ..pipeline.pairs import Scorer

            self.scorer = Scorer(model, settings=wanted.with_(device="cpu", precision="fp32"))
            self.precision = wanted.precision
        first = self._target_device()  # checks the device spec and precision now, not at the first evaluation
        check_precision(self.precision, first)
        self.offload = bool(offload)
        if self.offload:
            self._move(torch.device("cpu"))
        self.distributed = distributed
        self.n_extremes = max(0, int(n_extremes))
        self.per_prompt = per_prompt
        self.prefix = prefix
        self.monitor = AlertMonitor(as_rules(alerts), on_alert)
        self.metrics = TrackedMetrics(metrics, self.scorer, precision=self.precision)
        self.distribution = None if reference_stats is None else DistributionTracking(
            reference_stats, model_spec=getattr(self.scorer, "model_spec", None), prefix=prefix)
        self._writer_specs = list(writers) if isinstance(writers, (list, tuple)) else [writers]
        self._writers: list[tuple[Any, bool]] | None = None
        self._prompts_encoded = False
        self.last: TrackResult | None = None
        self.best: tuple[int, float] | None = None  # (step, clip/mean) of the best evaluation so far

    # ----------------------------------------------------------------- properties
    @property
    def prompts(self) -> list[str]:
        """The library's prompts, in order (what to generate images for)."""
        return list(self.library.prompts)

    @property
    def names(self) -> list[str]:
        """The library's prompt names, in the order of :attr:`prompts`."""
        return list(self.library.names)

    @property
    def should_stop(self) -> bool:
        """True once an alert rule made with ``stop=True`` has fired (the same on every rank)."""
        return self.monitor.should_stop

    @property
    def writers(self) -> list[Any]:
        """The writers in use (made at the first evaluation, on rank 0 only; empty on other ranks)."""
        return [w for w, _ in self._writers or []]

    def local_prompts(self) -> list[str]:
        """The prompts this rank should generate images for: all of them without torch.distributed; under it,
        a round-robin share in ``gather`` mode, all on rank 0 and none elsewhere in ``rank0`` mode."""
        return dist.shard(self.prompts, self.distributed)

    @staticmethod
    def due(step: int, every: int) -> bool:
        """Whether *step* is an evaluation step when evaluating every *every* steps (step 0 included)."""
        return every > 0 and step % every == 0

    # ----------------------------------------------------------------- scoring
    def log(self, step: int, images: Any, prompts: Sequence[str] | str | None = None) -> TrackResult:
        """Score *images* against their prompts, check alerts, write the result (rank 0) and return it.

        *images*: a list of images (PIL, paths, bytes, arrays/tensors: uint8 in 0..255 or float in [0, 1],
        HWC or CHW), a batch tensor (N, C, H, W) or (N, H, W, C), or a ``{name or prompt: image(s)}`` dict.
        *prompts*: one prompt (or library name) per image; or a list of K prompts for K × M images, taken as
        M consecutive images per prompt (the order of ``num_images_per_prompt`` in diffusers), or with one
        list of images per prompt; or a single prompt for all images; default: the library's prompts. Every
        image is kept (several per prompt are all scored). An image that cannot be scored is counted in
        ``clip/errors`` and logged, not raised.
        Under torch.distributed this is collective: call it on every rank.
        """
        start = time.perf_counter()
        srcs, texts = self._pairs(images, prompts)
        if self.distributed == "rank0" and dist.rank() != 0:
            srcs, texts = [], []
        local = self._score_local(srcs, texts)
        if self.distributed == "gather":
            result = self._assemble(step, dist.all_gather(local))
        else:
            result = self._assemble(step, [local]) if dist.rank() == 0 else None
            result = dist.broadcast(result)
        result.alerts = self.monitor.update(step, result.metrics, log=dist.rank() == 0)
        result.seconds = time.perf_counter() - start
        if dist.rank() == 0:
            for writer in self._ensure_writers():
                writer.write(result)
        self.last = result
        mean = result.mean
        if not np.isnan(mean) and (self.best is None or mean > self.best[1]):
            self.best = (step, mean)
        return result

    log_reward = _log_reward  # train_reward/NAME/… beside the evaluation's scores (clipgauge.track.reward_log)

    def _score_local(self, srcs: list[Any], texts: list[str]) -> dict[str, Any]:
        """Score this rank's pairs through the scoring step: raw cosines, errors, the other metrics' values, and
        thumbnails of the local extremes."""
        if not srcs:
            return {"prompts": [], "cosine": np.zeros(0), "errors": [], "extremes": [], "metrics": {}, "emb": None}
        with self._on_device():
            if not self._prompts_encoded:
                self.scorer.embed_texts(self.prompts)  # once; cached by the scorer for the whole run
                self._prompts_encoded = True
            scored = self.metrics.evaluate(srcs, texts, self.scorer.device,
                                           keep_embeddings=self.distribution is not None)
        cos, others = scored.cosine, scored.metrics
        errors = [f"image {i} ({texts[i][:60]!r}): {e}" for i, e in enumerate(scored.errors) if e is not None]
        extremes = []
        if self.n_extremes:
            ok = np.flatnonzero(~np.isnan(cos))
            order = ok[np.argsort(-cos[ok], kind="stable")]
            keep = list(order[: self.n_extremes]) + list(order[max(self.n_extremes, len(order) - self.n_extremes):])
            extremes = [(float(cos[i]), texts[i], _thumbnail(srcs[i])) for i in keep]
        return {"prompts": texts, "cosine": cos, "errors": errors, "extremes": extremes, "metrics": others,
                "emb": scored.image_embeddings}

    def _assemble(self, step: int, parts: list[dict[str, Any]]) -> TrackResult:
        texts = [t for p in parts for t in p["prompts"]]
        cos = np.concatenate([p["cosine"] for p in parts]) if parts else np.zeros(0)
        errors = [e for p in parts for e in p["errors"]]
        scores = to_scale(cos, self.base_scale)
        metrics = summary_stats(scores, self.prefix)
        if self.scale == "angle":  # beside the cosine (lower is better: not what alerts and "best" watch)
            metrics.update({k.replace("/angle/", "/angle_"): v for k, v in summary_stats(
                to_scale(cos, "angle"), f"{self.prefix}/angle").items() if not k.endswith("/n")})
        metrics.update(metric_stats([p.get("metrics", {}) for p in parts]))
        if self.distribution is not None:  # clip/cmmd, clip/vendi of every rank's images together
            embs = [p["emb"] for p in parts if p.get("emb") is not None]
            metrics.update(self.distribution.stats(np.concatenate(embs) if embs else None))
        if errors:
            metrics[f"{self.prefix}/errors"] = float(len(errors))
        if errors and dist.rank() == 0:
            logger.warning("clipgauge: %d of %d images could not be scored at step %d (first: %s)",
                           len(errors), len(texts), step, errors[0])
        names = self._names_for(texts)
        per_prompt: dict[str, PromptScores] = {}
        order = {p: i for i, p in enumerate(self.library.prompts)}
        for text in sorted(dict.fromkeys(texts), key=lambda t: order.get(t, len(order))):
            per_prompt[names[text]] = PromptScores(names[text], text, [])
        for text, s in zip(texts, scores):
            if not np.isnan(s):
                per_prompt[names[text]].scores.append(float(s))
        if self.per_prompt:
            for name, ps in per_prompt.items():
                if ps.scores:
                    metrics[f"{self.prefix}/prompt/{name}"] = ps.mean
        cands = [(float(to_scale(c, self.base_scale)), t, img) for p in parts for c, t, img in p["extremes"]]
        cands.sort(key=lambda x: -x[0])
        k = self.n_extremes
        best = cands[:k]
        worst = cands[max(k, len(cands) - k):][::-1]
        return TrackResult(
            step=int(step), metrics=metrics, per_prompt=per_prompt, scale=self.scale, prefix=self.prefix,
            best=[Extreme(names[t], t, s, img) for s, t, img in best],
            worst=[Extreme(names[t], t, s, img) for s, t, img in worst],
            errors=errors, wall_time=time.time(),
        )

    def _names_for(self, texts: list[str]) -> dict[str, str]:
        """Library names for library prompts; unique slugs for any other prompt."""
        out: dict[str, str] = {}
        taken = set(self.library.names)
        for text in dict.fromkeys(texts):
            name = self.library.name_of(text)
            if text not in self.library.prompts:
                base, k = name, 2
                while name in taken:
                    name, k = f"{base}-{k}", k + 1
                taken.add(name)
            out[text] = name
        return out

    # ----------------------------------------------------------------- inputs
    def _pairs(self, images: Any, prompts: Sequence[str] | str | None) -> tuple[list[Any], list[str]]:
        """Flatten the ``log`` arguments into parallel lists of image sources and prompt texts."""
        if isinstance(images, Mapping):
            if prompts is not None:
                raise UsageError("give prompts either as the keys of an images dict or as prompts=, not both")
            srcs, texts = [], []
            for key, value in images.items():
                text = self._prompt_text(key)
                for img in _as_image_list(value):
                    srcs.append(img)
                    texts.append(text)
            return srcs, texts
        srcs = _as_image_list(images)
        if isinstance(prompts, str):
            return srcs, [self._prompt_text(prompts)] * len(srcs)
        plist = self.prompts if prompts is None else [self._prompt_text(p) for p in prompts]
        if not srcs:
            return [], []
        if len(srcs) == len(plist) and all(isinstance(x, (list, tuple)) for x in srcs):
            # one list of images per prompt, e.g. [[img, img], [img, img]]
            pairs = [(img, p) for group, p in zip(srcs, plist) for img in _as_image_list(group)]
            return [img for img, _ in pairs], [p for _, p in pairs]
        if not plist or len(srcs) % len(plist):
            where = "the library's" if prompts is None else "the"
            raise UsageError(f"{len(srcs)} images do not match {where} {len(plist)} prompts "
                             "(give one image per prompt, or the same number of images for every prompt)")
        per = len(srcs) // len(plist)
        return srcs, [p for p in plist for _ in range(per)]

    def _prompt_text(self, key: Any) -> str:
        if not isinstance(key, str):
            raise UsageError(f"a prompt must be text, got {type(key).__name__}")
        if key in self.library.names and key not in self.library.prompts:
            return self.library.prompt_of(key) or key
        return key

    # ----------------------------------------------------------------- devices
    def _target_device(self) -> torch.device:
        spec = self._device_spec
        if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
            cuda = torch.cuda.is_available()
            return torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        dev = resolve_device(spec)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        return dev

    def _move(self, device: torch.device) -> None:
        """Put the scorer's model on *device* (the Scorer-level operation described in the README)."""
        self.scorer.to(device, self.precision)

    @contextmanager
    def _on_device(self) -> Iterator[None]:
        device = self._target_device()
        self._move(device)
        try:
            yield
        finally:
            if self.offload and device.type != "cpu":
                self._move(torch.device("cpu"))
                if device.type == "cuda":
                    torch.cuda.empty_cache()

    # ----------------------------------------------------------------- writers
    def _ensure_writers(self) -> list[Any]:
        if self._writers is None:
            self._writers = []
            for spec in self._writer_specs:
                if spec is not None:
                    self._writers.append(make_writer(spec))
        return [w for w, _ in self._writers]

    def flush(self) -> None:
        """Flush every writer."""
        for w, _ in self._writers or []:
            if getattr(w, "flush", None) is not None:
                w.flush()

    def close(self) -> None:
        """Close the writers the tracker made (user-made writers are only flushed). The model stays loaded."""
        for w, made_here in self._writers or []:
            if made_here:
                w.close()
            elif getattr(w, "flush", None) is not None:
                w.flush()
        self._writers = None if not self._writers else []

    def __enter__(self) -> CLIPTracker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _as_image_list(images: Any) -> list[Any]:
    """One list entry per image for every accepted ``images`` form."""
    if images is None:
        return []
    if isinstance(images, (Image.Image, str, Path, bytes, bytearray)):
        return [images]
    if hasattr(images, "shape") and hasattr(images, "ndim"):
        if images.ndim == 4:
            return [images[i] for i in range(images.shape[0])]
        return [images]
    return list(images)


def _thumbnail(src: Any) -> Image.Image | None:
    try:
        img = load_image(src).copy()
    except Exception:  # noqa: BLE001 - a thumbnail is a nicety; the score is what matters
        return None
    img.thumbnail((THUMBNAIL, THUMBNAIL))
    return img

