"""Pieces both training loops share: resumable batches, signals, EMA, step budgets.

All randomness of step k (which videos, noise, timesteps, frames) comes from generators
seeded by (seed, k), so a run stopped and resumed at step k sees exactly what an
uninterrupted run sees, and a global batch is the same whatever the process count.
"""

from __future__ import annotations

import copy
import math
import signal
import time
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import Sampler

from pvdm_core import distributed as dist
from pvdm_core.errors import BadInputError


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """Independent generator per (seed, step, stream)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 16 + stream)


def micro_batches(global_batch: int, grad_accum: int) -> int:
    """Per-process micro-batch size; the preset's batch is the global batch."""
    world = dist.world_size()
    if global_batch % (world * grad_accum):
        raise BadInputError(f"batch size {global_batch} is not divisible by processes ({world}) x grad_accum ({grad_accum})")
    return global_batch // (world * grad_accum)


class StepBatchSampler(Sampler[list[int]]):
    """Yields this rank's share of the global batch for steps start..total-1.

    Epoch e visits the dataset in permutation randperm(N, seed e); the global batch of step k
    is positions k*B .. k*B+B-1 of that endless sequence; rank r takes every world-th item.
    """

    def __init__(self, n: int, global_batch: int, seed: int, start_step: int, total_steps: int):
        self.n, self.batch, self.seed = n, global_batch, seed
        self.start, self.total = start_step, total_steps

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def global_batch(self, step: int) -> list[int]:
        out, pos = [], step * self.batch
        while len(out) < self.batch:
            epoch, offset = divmod(pos, self.n)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
            take = min(self.batch - len(out), self.n - offset)
            out += perm[offset : offset + take].tolist()
            pos += take
        return out

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.total):
            yield self.global_batch(step)[dist.rank() :: dist.world_size()]


class StopRequest:
    """Turns SIGINT/SIGTERM and a wall-clock budget into a flag the loop checks each step."""

    def __init__(self, max_seconds: float | None = None):
        self.deadline = time.monotonic() + max_seconds if max_seconds else None
        self.signal: str | None = None
        self._old: dict = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some test runners)
                pass
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    @property
    def reason(self) -> str | None:
        if self.signal:
            return self.signal
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "max-time"
        return None


class EMA:
    """Exponential moving average of weights as the release keeps it (LDM's LitEma): after step s
    (0-based) with s % every == 0 and s > 0, update n = s // every uses decay
    min(decay, (1 + n) / (10 + n)), so the average soon forgets the random init (0.9 at n = 80,
    0.99 at n = 890). The release updates every 25 steps, so its average spans 25x more steps
    than an every-step EMA of the same decay."""

    def __init__(self, model: nn.Module, decay: float, every: int = 1):
        if every < 1:
            raise BadInputError(f"EMA update interval must be at least 1, got {every}")
        self.decay, self.every = decay, every
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if step == 0 or step % self.every:
            return
        n = step // self.every
        d = min(self.decay, (1 + n) / (10 + n))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach().to(e.dtype), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


LR_SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, total: int, schedule: str, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier for 0-based `step` of `total`: linear warm-up over `warmup` steps,
    then 1 (constant) or a cosine from 1 down to `min_ratio` at step `total` (cosine)."""
    if schedule not in LR_SCHEDULES:
        raise BadInputError(f"unknown lr schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def compiled(module: nn.Module, backend: str) -> nn.Module:
    """`torch.compile(module, backend=backend)`, or the module itself when backend is ""."""
    if not backend:
        return module
    import torch._dynamo  # not loaded by `import torch`; only needed here

    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise BadInputError(f"run.compile={backend!r} is not a torch.compile backend; "
                            f"choose one of {', '.join(torch._dynamo.list_backends())} (or '' for none)")
    return torch.compile(module, backend=backend)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (or torch.compile), for saving."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)
