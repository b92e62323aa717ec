"""The toolbox both training loops use: step batches, micro-batches and DDP sync, the optimizer
step, EMA, a resumable train state, stop requests.

All randomness of step k (which videos, noise, timesteps, frames) comes from generators
seeded by (seed, k), so a run stopped and resumed at step k sees exactly what an
uninterrupted run sees, and a global batch is the same whatever the process count.
"""

from __future__ import annotations

import contextlib
import copy
import math
import secrets
import signal
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Sampler

from pvdm_core.base import distributed as dist
from pvdm_core.base.atomic import write_text_atomic
from pvdm_core.base.config import AETrainConfig, Config, DiffusionTrainConfig
from pvdm_core.base.device import DeviceChoice, compiled
from pvdm_core.base.errors import BadInputError, PvdmError
from pvdm_core.base.progress import log
from pvdm_core.io.checkpoint import LATEST, check_same_model, load_checkpoint, prune_checkpoints, save_checkpoint


# ---------------------------------------------------------------------------------------------
# Batches: the global batch of step k, this process's rows, its micro-batches
# ---------------------------------------------------------------------------------------------


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """Independent generator per (seed, step, stream)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 16 + stream)


def rank_rows() -> slice:
    """This process's rows of a global batch: every world-th, from its rank."""
    return slice(dist.rank(), None, dist.world_size())


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
    With epochs=True the items are (index, epoch), so a video dataset draws another window of
    the video each epoch (a function of the step: the same after a resume, in any worker).
    """

    def __init__(self, n: int, global_batch: int, seed: int, start_step: int, total_steps: int,
                 epochs: bool = False):
        self.n, self.batch, self.seed = n, global_batch, seed
        self.start, self.total, self.epochs = start_step, total_steps, epochs

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def global_batch(self, step: int) -> list[int] | list[tuple[int, int]]:
        out: list = []
        pos = step * self.batch
        while len(out) < self.batch:
            epoch, offset = divmod(pos, self.n)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
            take = min(self.batch - len(out), self.n - offset)
            picked = perm[offset : offset + take].tolist()
            out += [(i, epoch) for i in picked] if self.epochs else picked
            pos += take
        return out

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.total):
            yield self.global_batch(step)[rank_rows()]


def grad_accumulation(ddp: nn.Module, micro: int, grad_accum: int) -> Iterator[tuple[slice, contextlib.AbstractContextManager]]:
    """(rows, sync) per micro-batch of this process's batch: run its forward and backward inside
    `sync`, which is DDP's no_sync() on all but the last, so gradients are all-reduced once a step."""
    for k in range(grad_accum):
        last = k == grad_accum - 1
        sync = ddp.no_sync() if isinstance(ddp, DDP) and not last else contextlib.nullcontext()
        yield slice(k * micro, (k + 1) * micro), sync


# ---------------------------------------------------------------------------------------------
# Model wrapping and the optimizer step
# ---------------------------------------------------------------------------------------------


def wrap_for_training(model: nn.Module, compile_backend: str) -> tuple[nn.Module, nn.Module]:
    """(ddp, forward): the model in DDP under several processes (the handle for no_sync()), and
    that compiled with run.compile (the module to call)."""
    ddp = DDP(model) if dist.world_size() > 1 else model
    return ddp, compiled(ddp, compile_backend)


class GradScaler(torch.amp.GradScaler):
    """torch's GradScaler, resumable from a run saved without loss scaling: a disabled scaler
    saves {} (CPU, bf16, fp32), which torch refuses to load; here it starts a fresh scale."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            super().load_state_dict(state_dict)


def grad_scaler(device: DeviceChoice) -> GradScaler:
    """Loss scaling for fp16 autocast; a pass-through otherwise."""
    return GradScaler(device.device.type, enabled=device.needs_grad_scaler)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Mean of the gradients over processes, for modules outside DDP (the discriminators)."""
    if dist.world_size() > 1:
        for p in params:
            if p.grad is not None:
                dist.all_reduce_sum(p.grad).div_(dist.world_size())


def optimizer_step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, grad_clip: float = 0.0) -> None:
    """Unscale and clip the gradients to norm grad_clip (0: no clipping), step through the scaler
    (which skips the step on an fp16 overflow), zero the gradients. Call scaler.update() once
    after the step's last optimizer."""
    if grad_clip > 0:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_([p for group in opt.param_groups for p in group["params"]], grad_clip)
    scaler.step(opt)
    opt.zero_grad(set_to_none=True)


MIN_LOSS_SCALE = 2.0**-14  # fp16: 30 overflows in a row from the initial 2^16; the loss overflows whatever the scale


def check_finite(loss: float, step: int, run_dir: Path, scaler: torch.amp.GradScaler, hint: str = "") -> None:
    """A NaN or infinite loss ends the run with one message; earlier checkpoints stay. Under fp16
    loss scaling it is an overflow, which the scaler skips (the step's gradients are not finite
    either, so scaler.step skips the update and scaler.update halves the scale), unless the
    scale has collapsed: then the loss overflows whatever the scale, and the run ends."""
    if math.isfinite(loss):
        return
    if scaler.is_enabled() and scaler.get_scale() >= MIN_LOSS_SCALE:
        log(f"step {step}: fp16 loss overflow ({loss}), step skipped by the loss scaler")
        return
    raise PvdmError(f"loss became {loss} at step {step}; checkpoints written so far are kept in {run_dir}{hint}")


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

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)


def set_lr(opt: torch.optim.Optimizer, tc: AETrainConfig | DiffusionTrainConfig, step: int,
           time_share: float = 0.0) -> None:
    """Set the lr of 0-based `step` from a train config's lr, steps, lr_schedule, warmup_steps and
    min_lr_ratio: a function of the step alone, so a resumed run follows the same schedule, unless
    a time budget gives `time_share` (see `TimeBudget`)."""
    lr = tc.lr * lr_factor(step, tc.steps, tc.lr_schedule, tc.warmup_steps, tc.min_lr_ratio, time_share)
    for group in opt.param_groups:
        group["lr"] = lr


def lr_factor(step: int, total: int, schedule: str, warmup: int, min_ratio: float, time_share: float = 0.0) -> float:
    """Learning-rate multiplier for 0-based `step` of `total`: linear warm-up over `warmup` steps,
    then 1 (constant) or a cosine from 1 down to `min_ratio` at step `total` (cosine). The cosine's
    progress is the larger of the steps' share and `time_share`, the share of a time budget used."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, max((step - warmup) / (total - warmup), time_share))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class TimeBudget:
    """A training stage's wall-clock budget (`pvdm demo`). The lr schedule anneals over whichever
    runs out first, the steps or this time, so the pace is re-measured at every step: a slow
    (busy) first minute costs a minute of training, not the plan of the whole run. `spent_s` is
    what earlier runs of the same stage used; a resumed run continues the schedule from there, so
    it is not bit-identical to an uninterrupted one (its lrs depend on the clock)."""

    def __init__(self, total_s: float, spent_s: float = 0.0):
        self.total_s, self.spent_s, self.started = total_s, spent_s, time.monotonic()

    def share(self, device: torch.device) -> float:
        """Share of the budget used so far, in [0, 1]; under several processes the largest of
        theirs (an all-reduce on `device`), since ranks stepping at different lrs would drift apart."""
        mine = min(1.0, (self.spent_s + time.monotonic() - self.started) / self.total_s) if self.total_s > 0 else 1.0
        return dist.max_over_ranks(mine, device)

    def left_s(self) -> float:
        return max(0.0, self.total_s - self.spent_s)


# ---------------------------------------------------------------------------------------------
# The train state: what checkpoints hold, resume restores and the GAN rollback rewinds
# ---------------------------------------------------------------------------------------------


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any], /) -> Any: ...


class TrainState:
    """The step, each stateful part by its checkpoint key (model, ema, optimizer, scaler, ...)
    and plain metadata saved as is (kind, config, ...); parts given as None are left out.
    `keep_checkpoints` (run.keep_checkpoints) prunes older step checkpoints after each save."""

    def __init__(self, meta: dict[str, Any], keep_checkpoints: int = 0, **parts: Stateful | None):
        self.step = 0
        self.meta = meta
        self.keep_checkpoints = keep_checkpoints
        self.parts = {name: part for name, part in parts.items() if part is not None}

    def state_dict(self) -> dict[str, Any]:
        return {**self.meta, "step": self.step, **{name: p.state_dict() for name, p in self.parts.items()}}

    def load_state_dict(self, state: dict[str, Any], only: Iterable[str] | None = None,
                        optional: Iterable[str] = ()) -> None:
        """Restore every part, and the step (resume), or the parts named in `only`, keeping the
        step (a rollback). A part named in `optional` may be missing from `state`."""
        names = [n for n in (only if only is not None else self.parts) if n in self.parts]
        for name in names:
            if name in state or name not in optional:
                self.parts[name].load_state_dict(state[name])
        if only is None:
            self.step = state["step"]

    def save(self, run_dir: Path, name: str | None = None) -> Path:
        """Write run_dir/step-NNNNNNN.pt and point `latest` at it (or write run_dir/name, no
        pointer, no pruning). Rank 0 writes; every rank waits, so none runs ahead of a
        half-written file."""
        path = run_dir / (name or f"step-{self.step:07d}.pt")
        if dist.is_main():
            save_checkpoint(path, self.state_dict(), point_latest=name is None)
            if name is None:
                prune_checkpoints(run_dir, self.keep_checkpoints)
        dist.barrier()
        return path


def check_shared_run_dir(run_dir: Path) -> None:
    """Under several processes every one reads what rank 0 writes there (`latest` on resume,
    good.pt on a GAN rollback), so the run folder must be one folder all of them see (on several
    nodes: a shared filesystem). Checked at start: rank 0 writes a token, every rank reads it."""
    if dist.world_size() == 1:
        return
    marker = run_dir / ".pvdm-shared-check"
    token = secrets.token_hex(8) if dist.is_main() else ""
    if dist.is_main():
        write_text_atomic(marker, token)
    token = dist.all_gather_object(token)[0]
    dist.barrier()
    seen = marker.is_file() and marker.read_text() == token
    blind = [(r, host) for r, (ok, host) in enumerate(dist.all_gather_object((seen, socket.gethostname()))) if not ok]
    if dist.is_main():
        marker.unlink(missing_ok=True)
    if blind:
        ranks = ", ".join(f"{r} on {host}" for r, host in blind)
        raise BadInputError(f"process(es) {ranks} do not see {run_dir} as process 0 writes it: with several nodes "
                            f"--out must be on a filesystem all of them share (checkpoints and resume read it)")


def latest_checkpoint(run_dir: Path, kind: str, cfg: Config, same: tuple[str, ...]) -> dict[str, Any] | None:
    """The checkpoint a re-run of the same --out resumes from (None: a fresh run); refused when
    the config sections `same` (model and data shape) differ from the command's, or when the
    processes do not share the run folder."""
    check_shared_run_dir(run_dir)
    if not (run_dir / LATEST).is_file():
        return None
    saved = load_checkpoint(run_dir, kind)
    check_same_model(saved, cfg, same)
    return saved


# ---------------------------------------------------------------------------------------------
# Loop pacing: periodic work, speed, stopping
# ---------------------------------------------------------------------------------------------


def due(step: int, every: int, total: int) -> bool:
    """Periodic work (log, evaluate, preview) runs every `every` steps and after the last."""
    return step % every == 0 or step == total


class Pace:
    """Steps per second of this process's run (steps before a resume do not count)."""

    def __init__(self) -> None:
        self.t0, self.steps = time.monotonic(), 0

    def tick(self) -> None:
        self.steps += 1

    @property
    def it_s(self) -> float:
        return self.steps / (time.monotonic() - self.t0)


STOP_REASONS = ("max-time", "SIGTERM", "SIGINT")  # coded 1.. in the flag the ranks agree on


class StopRequest:
    """Turns SIGINT/SIGTERM and a wall-clock budget into a flag the loop checks each step.

    Under several processes the flag is all-reduced every step (max over ranks), so all of them
    stop after the same step: a rank deciding alone would enter the checkpoint barrier while
    the others enter the next step's gradient all-reduce, and the job would hang."""

    def __init__(self, max_seconds: float | None = None, device: torch.device = torch.device("cpu")):
        self.deadline = time.monotonic() + max_seconds if max_seconds else None
        self.device = device  # where the flag is all-reduced (NCCL needs the rank's GPU)
        self.signal: str | None = None
        self.stopped: str | None = None  # the reason the loop stopped early, for the result
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
        """This process's own reason to stop, if any."""
        if self.signal:
            return self.signal
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "max-time"
        return None

    def now(self, step: int) -> bool:
        """True when the loop should stop after `step` (saying so on stderr): when any rank has a
        reason to, all of them get that reason (the highest coded of the ranks' reasons)."""
        mine = self.reason
        code = dist.max_over_ranks(STOP_REASONS.index(mine) + 1 if mine else 0, self.device)
        self.stopped = STOP_REASONS[code - 1] if code else None
        if self.stopped is not None and dist.is_main():
            log(f"stopping at step {step} ({self.stopped}); checkpoint saved, re-run the same command to resume")
        return self.stopped is not None
