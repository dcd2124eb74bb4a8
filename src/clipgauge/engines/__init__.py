"""Engines: where the one scoring step (:func:`clipgauge.pipeline.score.score_rows`) runs.

* ``local`` (:mod:`.local`): this process, in input order, shard after shard;
* ``ray`` (:mod:`.ray_engine`): Ray Data — read tasks on CPUs, a pool of scoring actors (one set of models each,
  one GPU each when there are GPUs) — for many GPUs and machines. Only that module imports ``ray``.

Both commit to the same :class:`~clipgauge.sinks.sharded.ShardedRun`, so a run started by one engine can be
finished by the other, and both give the same rows for the same input.
"""

from __future__ import annotations

from .options import RayOptions

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "RayOptions"]
