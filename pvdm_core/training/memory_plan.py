"""`pvdm plan`: for each training stage, the micro-batch, gradient accumulation and gradient
checkpointing that fit a GPU's memory, from the real training step costed on fake tensors
(pvdm_core/training/step_cost.py: nothing allocated), and the step time its FLOPs take at a stated
share of the GPU's peak.

The global batch (the preset's) never changes, so neither does the method: accumulation splits
it into micro-batches whose gradients add up to the same update. The choice: the largest
micro-batch that fits without checkpointing, unless that is below MIN_MICRO while checkpointing
fits a larger one (recomputation costs about a third more FLOPs; micro-batches of one or two
leave a GPU idle between kernels).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from pvdm_core.base.config import Config
from pvdm_core.base.errors import BadInputError
from pvdm_core.base.progress import log
from pvdm_core.training.step_cost import Stage, StepCost, fake_step_cost, precision_of, with_settings

GiB = 2**30
MIN_MICRO = 4  # below this a GPU step is launch-bound: checkpointing a larger micro-batch is worth it
STAGES: tuple[Stage, ...] = ("ae", "diffusion")
# Defaults of `pvdm plan`, documented there: a 24 GB card, an A10's dense bf16 peak, 40% of it
GPU_MEMORY_GIB = 24.0
GPU_TFLOPS = 125.0
UTILIZATION = 0.4
HEADROOM = 0.15  # share of the card kept for the CUDA context, cuDNN/cuBLAS workspaces, fragmentation


@dataclass(frozen=True)
class GPU:
    memory_gib: float = GPU_MEMORY_GIB
    tflops: float = GPU_TFLOPS  # dense peak at the training precision
    utilization: float = UTILIZATION  # share of the peak a training step reaches
    headroom: float = HEADROOM
    count: int = 1  # data-parallel processes (one per GPU); the global batch is split over them

    def check(self) -> None:
        if self.memory_gib <= 0 or self.tflops <= 0:
            raise BadInputError(f"GPU memory and TFLOPS must be positive, got {self.memory_gib} GiB, {self.tflops} TFLOPS")
        if not 0 < self.utilization <= 1 or not 0 <= self.headroom < 1:
            raise BadInputError(f"utilization must be in (0, 1] and headroom in [0, 1), "
                                f"got {self.utilization} and {self.headroom}")
        if self.count < 1:
            raise BadInputError(f"--gpus must be at least 1, got {self.count}")

    @property
    def budget_bytes(self) -> int:
        """Tensor memory a step may peak at."""
        return int(self.memory_gib * (1 - self.headroom) * GiB)


@dataclass(frozen=True)
class Setting:
    micro_batch: int
    grad_accum: int
    grad_checkpoint: bool
    peak_gib: float
    step_tflop: float  # one optimizer step of one process (all its micro-batches)
    step_s: float  # at the GPU's peak x utilization

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _global_batch(cfg: Config, stage: Stage) -> int:
    return (cfg.ae_train if stage == "ae" else cfg.diffusion_train).batch_size


def _ddp_bytes(cfg: Config, stage: Stage, gpus: int) -> int:
    """DDP's gradient buckets: one more copy of the gradients (fp32) when several processes train."""
    if gpus == 1:
        return 0
    from pvdm_core.artifacts.load import build_autoencoder, build_unet

    with torch.device("meta"):
        model = build_autoencoder(cfg) if stage == "ae" else build_unet(cfg)
    return sum(p.numel() * 4 for p in model.parameters())


class StagePlanner:
    """Costs settings of one stage (memoised: each fake step takes seconds) and picks one."""

    def __init__(self, cfg: Config, stage: Stage, gpu: GPU):
        self.cfg, self.stage, self.gpu = cfg, stage, gpu
        self.amp_dtype = precision_of(cfg.run.amp)
        self.extra = _ddp_bytes(cfg, stage, gpu.count)
        self._costs: dict[tuple[int, bool], StepCost] = {}

    def cost(self, micro: int, checkpoint: bool) -> StepCost:
        key = (micro, checkpoint)
        if key not in self._costs:
            log(f"costing {self.stage} at micro-batch {micro}, checkpointing {'on' if checkpoint else 'off'}")
            self._costs[key] = fake_step_cost(with_settings(self.cfg, self.stage, checkpoint), self.stage, micro,
                                              self.amp_dtype, count_flops=True)
        return self._costs[key]

    def fits(self, micro: int, checkpoint: bool) -> bool:
        return self.cost(micro, checkpoint).peak_bytes + self.extra <= self.gpu.budget_bytes

    def largest(self, per_gpu: int, checkpoint: bool, at_least: int = 1) -> int | None:
        """The largest micro-batch of at least `at_least` dividing the per-GPU batch that fits
        (the peak grows with it): the whole batch first, the usual answer of small presets."""
        options, best = [d for d in _divisors(per_gpu) if d >= at_least], None
        if not options:
            return None
        if self.fits(options[-1], checkpoint):
            return options[-1]
        lo, hi = 0, len(options) - 2
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.fits(options[mid], checkpoint):
                best, lo = options[mid], mid + 1
            else:
                hi = mid - 1
        return best

    def setting(self, per_gpu: int, micro: int, checkpoint: bool) -> Setting:
        cost = self.cost(micro, checkpoint)
        accum = per_gpu // micro
        flops = cost.flops * accum
        seconds = flops / (self.gpu.tflops * 1e12 * self.gpu.utilization)
        return Setting(micro, accum, checkpoint, round((cost.peak_bytes + self.extra) / GiB, 3),
                       float(f"{flops / 1e12:.4g}"), float(f"{seconds:.4g}"))  # 4 significant digits

    def plan(self) -> dict[str, Any]:
        batch = _global_batch(self.cfg, self.stage)
        if batch % self.gpu.count:
            raise BadInputError(f"the {self.stage} global batch {batch} is not divisible by {self.gpu.count} GPUs")
        per_gpu = batch // self.gpu.count
        plain = self.largest(per_gpu, False)
        # checkpointing is an option only where it fits a larger micro-batch than going without
        ckpt = self.largest(per_gpu, True, (plain or 0) + 1)
        use_ckpt = ckpt is not None and (plain is None or (plain < min(MIN_MICRO, per_gpu) and ckpt > plain))
        options = [self.setting(per_gpu, m, c) for m, c in ((plain, False), (ckpt, True)) if m is not None]
        chosen = next((o for o in options if o.grad_checkpoint == use_ckpt), None)
        needed = None if chosen else round((self.cost(1, True).peak_bytes + self.extra) / GiB, 2)
        return {"stage": self.stage, "phase": self.phase(), "global_batch": batch, "per_gpu_batch": per_gpu,
                "fits": chosen is not None, "setting": chosen.as_dict() if chosen else None,
                "set": self.overrides(chosen) if chosen else [], "options": [o.as_dict() for o in options],
                **({"needs_gib_at_micro_batch_1": needed} if needed else {})}

    def phase(self) -> str:
        """Which part of the stage's schedule the step is: the costliest."""
        if self.stage == "diffusion":
            return "every step"
        tc = self.cfg.ae_train
        return f"GAN phase (steps {tc.disc_start}-{tc.steps})" if 0 <= tc.disc_start < tc.steps else "every step"

    def overrides(self, s: Setting) -> list[str]:
        """The --set flags that train with setting `s`."""
        section, ckpt = ("ae_train", "ae_train") if self.stage == "ae" else ("diffusion_train", "unet")
        return [f"{section}.grad_accum={s.grad_accum}", f"{ckpt}.grad_checkpoint={str(s.grad_checkpoint).lower()}"]


def precision_name(cfg: Config) -> str:
    dtype = precision_of(cfg.run.amp)
    return f"{str(dtype).replace('torch.', '')} autocast" if dtype else "fp32"


def plan_training(cfg: Config, gpu: GPU, stages: tuple[Stage, ...] = STAGES) -> dict[str, Any]:
    """The plan of each stage for `gpu`, as one JSON-ready result."""
    gpu.check()
    return {"preset": cfg.preset, "gpu_memory_gib": gpu.memory_gib, "gpus": gpu.count,
            "budget_gib": round(gpu.budget_bytes / GiB, 2), "headroom": gpu.headroom,
            "precision": f"{precision_name(cfg)} (run.amp={cfg.run.amp})",
            "gpu_tflops": gpu.tflops, "utilization": gpu.utilization,
            "stages": [StagePlanner(cfg, stage, gpu).plan() for stage in stages]}
