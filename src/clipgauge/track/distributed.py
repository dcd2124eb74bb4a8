"""torch.distributed helpers for the tracker: who am I, gather from all ranks, broadcast from rank 0.

Without an initialised process group every helper behaves as a single process (rank 0 of 1), so the
tracker needs no special case for ordinary training. With one, the collective helpers must be called
on every rank (the tracker's ``log`` is therefore collective: call it on every rank).
"""

from __future__ import annotations

from typing import Any

import torch

#: ``gather``: every rank scores its own images and the scores are gathered; ``rank0``: only rank 0 scores.
DIST_MODES = ("gather", "rank0")


def dist_active() -> bool:
    """True when a torch.distributed process group is initialised (with more than zero ranks)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return torch.distributed.get_rank() if dist_active() else 0


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    return torch.distributed.get_world_size() if dist_active() else 1


def all_gather(obj: Any) -> list[Any]:
    """Every rank's *obj* (picklable), in rank order, on every rank."""
    if not dist_active() or world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank *src*'s *obj* (picklable), on every rank."""
    if not dist_active() or world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def shard(items: list[Any], mode: str) -> list[Any]:
    """This rank's part of *items*: ``gather`` mode splits them round-robin over ranks; ``rank0`` gives all
    to rank 0 and none to the others."""
    if mode == "rank0":
        return list(items) if rank() == 0 else []
    return list(items)[rank() :: world_size()]
