"""Data parallelism under `torchrun`: process-group set-up and rank-0 decisions shared by all."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where collective tensors live (cuda for nccl)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device_type: str, timeout_s: int = 600) -> DistInfo:
    """Join the process group `torchrun` describes (RANK, WORLD_SIZE); single process otherwise.

    The bounded timeout makes a job whose peer died exit with an error instead of hanging.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local, "cuda" if device_type == "cuda" else "cpu")


def teardown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(info: DistInfo, obj):
    """Rank 0's `obj` on every rank (pickled; for ids and small state, not tensors of weights)."""
    if not info.active:
        return obj
    box = [obj if info.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(info: DistInfo, flag: bool) -> bool:
    """True on every rank when `flag` is true on any (e.g. a SIGTERM received by one process)."""
    if not info.active:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def sum_all(info: DistInfo, values: list[float]) -> list[float]:
    if not info.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return t.tolist()
