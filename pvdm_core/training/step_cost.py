"""One training step of a stage, built from the training loops' own parts, and what it costs:
its peak memory and FLOPs, measured on fake tensors (shapes and dtypes, no storage), so that
PVDM-L at 256^2 is costed in seconds on a laptop with nothing allocated.

The step is the loops' steady state: models, EMA copy, AdamW with its state already allocated
(as from step 1 on; its multi-tensor implementation, which torch picks on CUDA, with one
parameter-sized temporary), one micro-batch's forward and backward (`train_ae.micro_step`, or
`diffusion_loss` and its backward), then the optimizer steps. What it leaves out: the data
loader's batch of the other micro-batches (host memory), held-out evaluation and preview
sampling (no_grad, batch <= micro-batch), and everything that is not a tensor (CUDA context,
cuDNN/cuBLAS workspaces, allocator fragmentation): `memory_plan` keeps headroom for those.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only
from torch.utils.weak import WeakIdKeyDictionary

from pvdm_core.artifacts.load import build_autoencoder, build_unet
from pvdm_core.base.config import Amp, Config
from pvdm_core.base.device import DeviceChoice, autocast

Stage = Literal["ae", "diffusion"]
# step(), the optimizers to warm() first, and the bytes of the EMA copy, which is not built: its
# deepcopy of fake parameters would leave the fake mode, and its update needs no temporaries
Step = tuple[Callable[[], None], list[torch.optim.Optimizer], int]
CUDA_BLOCK = 512  # the CUDA caching allocator rounds every allocation up to 512 bytes


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage alive while it is active, and their peak: each storage counts from
    the op that made it until it is freed, rounded up to CUDA_BLOCK. Works on real and fake
    tensors alike (fake ones have sizes, no data)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def reset_peak(self) -> None:
        self.peak = self.live

    def _add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        if storage in self._seen:
            return
        size = -(-storage.nbytes() // CUDA_BLOCK) * CUDA_BLOCK
        self._seen[storage] = size
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, size)

    def _free(self, size: int) -> None:
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self._add, out)
        return out


def precision_of(amp: Amp) -> torch.dtype | None:
    """The autocast dtype training on a GPU uses for run.amp (auto: bf16, as on any GPU of
    compute capability 8.0 or newer; fp16 takes the same memory), None for fp32."""
    return {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


def _state_bytes(model: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers: what an EMA copy of the model holds."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def warm(optimizers: list[torch.optim.Optimizer]) -> None:
    """Allocate AdamW's state as the first step does (zero gradients, then none), so that the
    costed step is a steady-state one."""
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)


def ae_step(cfg: Config, micro: int, device: DeviceChoice) -> Step:
    """The autoencoder's step as train_ae runs it, in its heaviest phase: with the GAN critics
    when the schedule reaches disc_start, LPIPS when perceptual_weight > 0."""
    from pvdm_core.training.gan import Critics
    from pvdm_core.training.losses import LPIPSVGG
    from pvdm_core.training.toolbox import optimizer_step
    from pvdm_core.training.train_ae import micro_step

    tc, dev = cfg.ae_train, device.device
    model = build_autoencoder(cfg)
    model.set_grad_checkpoint(tc.grad_checkpoint)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay,
                            foreach=True)
    lpips = LPIPSVGG(None) if tc.perceptual_weight > 0 else None
    critics = Critics(tc, dev) if 0 <= tc.disc_start < tc.steps else None
    scaler = torch.amp.GradScaler(dev.type, enabled=False)
    frames, res = cfg.data.frames, cfg.data.resolution

    def step() -> None:
        x = torch.rand(micro, 3, frames, res, res, device=dev) * 2 - 1  # (B, 3, T, H, W)
        frame_idx = torch.randint(0, frames, (micro,), device=dev)
        micro_step(model, x, frame_idx, tc, lpips, critics, scaler, device, contextlib.nullcontext())
        optimizer_step(opt, scaler, tc.grad_clip)
        if critics is not None:
            critics.step(scaler, tc.disc_lr)

    return step, [opt] + ([critics.opt] if critics is not None else []), _state_bytes(model) if tc.ema_decay > 0 else 0


def diffusion_step(cfg: Config, micro: int, device: DeviceChoice) -> Step:
    """The UNet's step as train_diffusion runs it: every example conditioned (the costliest
    case), EMA update; a class-conditional model is costed with the null label (same memory)."""
    from pvdm_core.diffusion.process import NoiseSchedule, diffusion_loss
    from pvdm_core.models.autoencoder import Latents
    from pvdm_core.training.toolbox import optimizer_step

    tc, dev = cfg.diffusion_train, device.device
    schedule = NoiseSchedule.from_config(cfg.diffusion)
    model = build_unet(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, foreach=True)
    with torch.device("meta"):
        shapes = build_autoencoder(cfg).latent_shapes()  # {plane: (C, a, b)}
    scaler = torch.amp.GradScaler(dev.type, enabled=False)

    def step() -> None:
        planes = lambda: Latents(*(torch.randn(micro, *shapes[name], device=dev) for name in Latents._fields))
        z, z_prev, noise = planes(), planes(), planes()
        t = torch.randint(0, schedule.num_timesteps, (micro,), device=dev)
        mask = torch.ones(micro, dtype=torch.bool, device=dev)
        with autocast(device):
            loss = diffusion_loss(model, z, z_prev, t, noise, mask, schedule, cfg.diffusion.prediction)
            scaler.scale(loss / tc.grad_accum).backward()
        optimizer_step(opt, scaler, tc.grad_clip)

    return step, [opt], _state_bytes(model)


def with_settings(cfg: Config, stage: Stage, grad_checkpoint: bool, grad_accum: int = 1) -> Config:
    """cfg with the stage's gradient checkpointing and accumulation set."""
    if stage == "ae":
        return dataclasses.replace(cfg, ae_train=dataclasses.replace(
            cfg.ae_train, grad_checkpoint=grad_checkpoint, grad_accum=grad_accum))
    return dataclasses.replace(cfg, unet=dataclasses.replace(cfg.unet, grad_checkpoint=grad_checkpoint),
                               diffusion_train=dataclasses.replace(cfg.diffusion_train, grad_accum=grad_accum))


def build_step(cfg: Config, stage: Stage, micro: int, amp_dtype: torch.dtype | None, device: str = "cpu") -> Step:
    """`step()`, one steady-state training step on `device` (run it after `warm(optimizers)`),
    under autocast to `amp_dtype` (None: fp32). Models are made where they run, never moved: fake
    parameters cannot be."""
    choice = DeviceChoice(torch.device(device), "step cost", amp_dtype, False)
    with choice.device:
        return (ae_step if stage == "ae" else diffusion_step)(cfg, micro, choice)


@dataclass(frozen=True)
class StepCost:
    peak_bytes: int  # tensor memory at the step's peak, models, optimizer state and EMA copy included
    flops: int  # one micro-batch's forward and backward, recomputation included (0: not counted)
    ema_bytes: int = 0  # the EMA copy's share of peak_bytes


def fake_step_cost(cfg: Config, stage: Stage, micro: int, amp_dtype: torch.dtype | None,
                   count_flops: bool = False) -> StepCost:
    """Peak memory (and FLOPs) of one steady-state step at micro-batch `micro` with cfg's
    gradient checkpointing, under autocast to `amp_dtype`, on fake tensors: nothing allocated.
    CPU kernels stand in for CUDA ones (same saved tensors: flash attention, cast weights)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    with FakeTensorMode(), LiveBytes() as live:
        step, optimizers, ema_bytes = build_step(cfg, stage, micro, amp_dtype)
        warm(optimizers)
        live.reset_peak()
        counter = FlopCounterMode(display=False) if count_flops else contextlib.nullcontext()
        with counter:
            step()
    return StepCost(live.peak + ema_bytes, counter.get_total_flops() if count_flops else 0, ema_bytes)
