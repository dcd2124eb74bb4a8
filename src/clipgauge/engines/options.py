"""Options of the engines (plain data, no imports of the engines themselves)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RayOptions:
    """How the Ray engine runs: cluster address, actors, resources per actor."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
