"""How `pvdm demo` spends its time budget: measure this machine, then fix the step counts.

The learning-rate schedules anneal over a known number of steps, so the steps have to be known
before training starts. A few timed steps of each model, a few sampler steps and one I3D batch
give the cost of every stage on this machine (and its current load); what is left after
evaluation goes to training, split between the autoencoder and the diffusion model, capped at
the preset's step counts. On a fast GPU the caps bind and the demo finishes early.

The plan is written once into the demo folder; a re-run reuses it, so a resumed run trains
to the same step counts (and the same schedules) as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from pvdm_core.artifacts import build_autoencoder, build_unet
from pvdm_core.config import Config
from pvdm_core.data.datasets import build_dataset
from pvdm_core.device import DeviceChoice, autocast
from pvdm_core.models.autoencoder import Latents

# Share of the training time that goes to the autoencoder. The samples can only be as sharp
# as the autoencoder's reconstructions, and the tiny diffusion model's loss flattens early,
# so the autoencoder gets most of it (benchmarks/RESULTS.md, "Demo").
AE_SHARE = 0.6
# Measured costs are multiplied by these (first full demo on 2 CPU cores: training steps ran 25%
# faster than timed, while FVD took 1.4x the I3D time alone: mp4 decoding and model loading).
STEP_MARGIN = 1.05  # training: held-out evaluations and checkpoints every 250 steps
SAMPLE_MARGIN = 1.15  # sampling: decoding, re-encoding between clips, writing mp4s
FVD_MARGIN = 1.4
FIXED_S = 45.0  # held-out videos, reconstructions, loading models, the report (measured ~35 s)
NUM_LONG = 2  # 32-frame samples (the second clip conditioned on the first)
NUM_EXTEND = 2  # held-out videos extended by a clip


@dataclass
class DemoPlan:
    budget_s: float
    ae_steps: int
    diffusion_steps: int
    ae_cap_s: float  # training stops here at the latest (and resumes on a re-run)
    diffusion_cap_s: float
    reserve_s: float  # what sampling and evaluation are expected to take
    costs: dict  # measured seconds: ae_step, unet_step, sample_step (per batch), i3d_clip

    def to_dict(self) -> dict:
        return asdict(self)


def _timed(fn: Callable[[], None], device: DeviceChoice, repeats: int = 3, warmup: bool = True) -> float:
    """Median seconds of fn(), after one warm-up call."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        if device.device.type == "cuda":
            torch.cuda.synchronize(device.device)
        t0 = time.perf_counter()
        fn()
        if device.device.type == "cuda":
            torch.cuda.synchronize(device.device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def ae_step_seconds(cfg: Config, device: DeviceChoice) -> tuple[float, float]:
    """(one optimizer step of the autoencoder at the preset's batch, making one training video):
    the embedded dataset is generated on the fly, so its cost is part of every step."""
    model = build_autoencoder(cfg).to(device.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    d = cfg.data
    videos = build_dataset(d, "train")
    video_s = _timed(lambda: videos[0], device)
    x = torch.rand(cfg.ae_train.batch_size, 3, d.frames, d.resolution, d.resolution, device=device.device) * 2 - 1

    def step() -> None:
        with autocast(device):
            loss = (model(x)[0] - x).abs().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _timed(step, device) + cfg.ae_train.batch_size * video_s, video_s


def _random_latents(cfg: Config, batch: int, device: torch.device) -> Latents:
    shapes = build_autoencoder(cfg).latent_shapes()
    return Latents(*(torch.randn(batch, *shapes[k], device=device) for k in Latents._fields))


def unet_seconds(cfg: Config, device: DeviceChoice, sample_batch: int) -> tuple[float, float]:
    """(one diffusion training step at the preset's batch, one sampler step at sample_batch)."""
    unet = build_unet(cfg).to(device.device)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-6)
    z = _random_latents(cfg, cfg.diffusion_train.batch_size, device.device)
    t = torch.randint(0, cfg.diffusion.timesteps, (z.batch_size,), device=device.device)

    def train_step() -> None:
        with autocast(device):
            out = unet(z, t, z)
            loss = sum((o.float() ** 2).mean() for o in out)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    zs = _random_latents(cfg, sample_batch, device.device)
    ts = torch.zeros(sample_batch, dtype=torch.long, device=device.device)

    @torch.no_grad()
    def sample_step() -> None:
        with autocast(device):
            unet(zs, ts, zs)

    return _timed(train_step, device), _timed(sample_step, device)


def i3d_clip_seconds(device: DeviceChoice, frames: int) -> float:
    """Seconds per clip of the FVD feature extractor (I3D at 224 px), from a batch of two."""
    from pvdm_core.metrics.i3d_weights import load_i3d

    fn, _ = load_i3d(device=device.device)
    x = torch.zeros(2, 3, frames, 224, 224, device=device.device)
    with torch.no_grad():
        fn(x[:1])  # warm-up on one clip: I3D costs about 1 s a clip on 2 CPU cores
        return _timed(lambda: fn(x), device, repeats=1, warmup=False) / 2


def make_plan(cfg: Config, device: DeviceChoice, budget_s: float, spent_s: float, num_eval: int,
              sample_batch: int) -> DemoPlan:
    """Measure the costs, reserve time for sampling and evaluation, fit the step counts into what
    is left of the budget after `spent_s` seconds and the measurements themselves."""
    started = time.monotonic()
    costs: dict[str, float] = {}
    costs["ae_step"], costs["video"] = ae_step_seconds(cfg, device)
    costs["unet_step"], costs["sample_step"] = unet_seconds(cfg, device, sample_batch)
    costs["i3d_clip"] = i3d_clip_seconds(device, cfg.data.frames)
    sampler_steps = 1000 if cfg.sample.sampler == "ddpm" else cfg.sample.steps
    # batches of one clip each: generated and untrained, 2 clips of the long samples, one per extension
    clips = 2 * math.ceil(num_eval / sample_batch) + 2 + NUM_EXTEND
    # train-diffusion first makes and encodes the training split: 2T-frame videos, two clips each,
    # an encode costing about a third of a training step's forward + backward per clip
    n_train = cfg.data.synthetic_train
    encode_s = n_train * 2 * costs["video"] + 2 * n_train / cfg.ae_train.batch_size * costs["ae_step"] / 3
    reserve = (SAMPLE_MARGIN * clips * sampler_steps * costs["sample_step"] + FVD_MARGIN * 4 * num_eval * costs["i3d_clip"]
               + STEP_MARGIN * encode_s + FIXED_S)
    elapsed = spent_s + time.monotonic() - started
    train_s = max(0.0, budget_s - elapsed - reserve)
    ae_cap, diffusion_cap = AE_SHARE * train_s, (1 - AE_SHARE) * train_s
    # steps that fit the caps with room for evaluation and checkpoints; at least one of each
    ae_steps = max(1, min(cfg.ae_train.steps, int(ae_cap / (STEP_MARGIN * costs["ae_step"]))))
    diffusion_steps = max(1, min(cfg.diffusion_train.steps, int(diffusion_cap / (STEP_MARGIN * costs["unet_step"]))))
    return DemoPlan(budget_s, ae_steps, diffusion_steps, ae_cap, diffusion_cap, reserve,
                    {k: round(v, 5) for k, v in costs.items()})
