"""torchrun support: RANK/LOCAL_RANK/WORLD_SIZE from the environment, idempotent set-up.

A single process (no launcher) is the default and needs none of this: world size 1.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> None:
    """Join the process group once (nccl on CUDA, gloo elsewhere); no-op for one process."""
    if world_size() > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest `value` of all ranks (`value` itself without a process group): one tiny
    all-reduce, on `device` because NCCL reduces only CUDA tensors."""
    if world_size() > 1 and dist.is_available() and dist.is_initialized():
        t = torch.tensor([value], dtype=torch.int32, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())
    return value


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's picklable `obj`, in rank order ([obj] without a process group)."""
    if world_size() > 1 and dist.is_available() and dist.is_initialized():
        out: list[Any] = [None] * world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def device_for_rank(device: torch.device) -> torch.device:
    """Under torchrun each process takes GPU LOCAL_RANK (of the GPUs on its node)."""
    if device.type == "cuda" and world_size() > 1:
        index = local_rank() % max(1, torch.cuda.device_count())
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device
