"""torchrun support: RANK/LOCAL_RANK/WORLD_SIZE from the environment, idempotent set-up; and
`run_on_local_ranks`, which starts such processes itself on one machine's CPU cores.

A single process (no launcher) is the default and needs none of this: world size 1.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pvdm_core.base.errors import BadInputError, PvdmError

T = TypeVar("T")


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


def max_over_ranks(value: int | float, device: torch.device) -> int | float:
    """The largest `value` of all ranks (`value` itself without a process group), of the same
    type: one tiny all-reduce, on `device` because NCCL reduces only CUDA tensors."""
    if world_size() > 1 and dist.is_available() and dist.is_initialized():
        dtype = torch.float64 if isinstance(value, float) else torch.int64
        t = torch.tensor([value], dtype=dtype, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return type(value)(t.item())
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


# ---------------------------------------------------------------------------------------------
# Local ranks on CPU cores
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_on_local_ranks(fn: Callable[..., T], args: tuple, world: int) -> T:
    """fn(*args) in `world` CPU processes of one torch thread each, joined by gloo as torchrun
    would join them (fn sees RANK, WORLD_SIZE, ...); returns rank 0's result. fn and args must
    pickle (a module-level function). Why: the small models' steps are launch-bound, so on two
    cores two threads train the demo's UNet 1.25x as fast as one, while two processes of one
    thread each take 1.8x the clips (benchmarks/ranks.py, RESULTS.md "Demo").

    Only rank 0 shows progress. A PvdmError in any rank is raised here with its message and exit
    code. Ctrl-C reaches every rank (they share the terminal's process group): each stops after
    the same step and saves, as the training loops do under torchrun; this process waits for them.
    """
    if world == 1:
        return fn(*args)
    with tempfile.TemporaryDirectory(prefix="pvdm-ranks-") as tmp:
        ctx = mp.start_processes(_rank_main, args=(fn, args, world, free_port(), tmp), nprocs=world, join=False,
                                 start_method="spawn")
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # after the start: the ranks keep Ctrl-C
        try:
            while not ctx.join():
                pass
        except (mp.ProcessRaisedException, mp.ProcessExitedException):
            errors = sorted(Path(tmp).glob("error-*.json"))
            if not errors:
                raise
            first = json.loads(errors[0].read_text())
            raise (BadInputError if first["exit_code"] == BadInputError.exit_code else PvdmError)(
                first["message"]) from None
        finally:
            signal.signal(signal.SIGINT, previous)
        return pickle.loads((Path(tmp) / "result.pkl").read_bytes())


def _rank_main(index: int, fn: Callable[..., Any], args: tuple, world: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    if index > 0:
        os.environ["PVDM_NO_PROGRESS"] = "1"  # one progress display: rank 0's
    torch.set_num_threads(1)
    setup(torch.device("cpu"))
    try:
        result = fn(*args)
    except PvdmError as e:
        Path(tmp, f"error-{index}.json").write_text(json.dumps({"message": str(e), "exit_code": e.exit_code}))
        raise
    finally:
        dist.destroy_process_group()
    if index == 0:
        Path(tmp, "result.pkl").write_bytes(pickle.dumps(result))
