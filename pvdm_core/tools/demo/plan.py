"""How `pvdm demo` spends its time budget: measure this machine, reserve what evaluation
needs, and give the rest to training by the clock.

A few timed steps of each model, a few sampler steps and one I3D batch give the cost of every
stage on this machine (and its current load). What is left after evaluation is training time:
the autoencoder gets AE_SHARE of it as a wall-clock budget, and when it is done the diffusion
model gets everything left (`diffusion_budget`, re-measured then). Each trains until its time
or the preset's step cap runs out, with its lr schedule annealing over whichever ends first
(`toolbox.TimeBudget`), so the pace is re-measured at every step: a busy first minute costs a
minute, not the run. On a fast GPU the caps bind and the demo finishes early.

The plan and each stage's budget are written into the demo folder once; a re-run keeps them
and continues from the time already spent, so a resumed run ends where an uninterrupted one
would, though not bit-identically (its lrs follow the clock).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from pvdm_core.artifacts.load import build_autoencoder, build_unet
from pvdm_core.base.config import Config
from pvdm_core.base.device import DeviceChoice, autocast
from pvdm_core.data.datasets import build_dataset
from pvdm_core.models.autoencoder import Latents

# Share of the training time that goes to the autoencoder. On the class set with latent noise
# its reconstructions are 95% legible to the judge after 3000 steps (8 minutes on one core),
# while the diffusion model's share of the requested class still grows with every minute it
# gets: the diffusion model is the limit (benchmarks/RESULTS.md, "Learning").
AE_SHARE = 0.35
# Measured costs are multiplied by these (first full demo on 2 CPU cores: training steps ran 25%
# faster than timed, while FVD took 1.4x the I3D time alone: mp4 decoding and model loading).
STEP_MARGIN = 1.05  # training: held-out evaluations and checkpoints every 250 steps
SAMPLE_MARGIN = 1.15  # sampling: decoding, re-encoding between clips, writing mp4s
FVD_MARGIN = 1.4
FIXED_S = 45.0  # held-out videos, reconstructions, loading models, the report (measured ~35 s)
NUM_LONG = 12  # 32-frame samples (the second clip conditioned on the first): the boundary jump's sample
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
    from pvdm_core.evaluation.metrics.i3d_weights import load_i3d

    fn, _ = load_i3d(device=device.device)
    x = torch.zeros(2, 3, frames, 224, 224, device=device.device)
    with torch.no_grad():
        fn(x[:1])  # warm-up on one clip: I3D costs about 1 s a clip on 2 CPU cores
        return _timed(lambda: fn(x), device, repeats=1, warmup=False) / 2


def measure_costs(cfg: Config, device: DeviceChoice, sample_batch: int, models: bool = True) -> dict[str, float]:
    """Seconds of one AE step and of making one video (`models`), one UNet training step, one
    sampler step of `sample_batch` clips, one I3D clip."""
    costs: dict[str, float] = {}
    if models:
        costs["ae_step"], costs["video"] = ae_step_seconds(cfg, device)
    costs["unet_step"], costs["sample_step"] = unet_seconds(cfg, device, sample_batch)
    costs["i3d_clip"] = i3d_clip_seconds(device, cfg.data.frames)
    return {k: round(v, 5) for k, v in costs.items()}


def evaluation_seconds(cfg: Config, costs: dict[str, float], num_eval: int, sample_batch: int) -> float:
    """What sampling, FVD and the rest after training are expected to take."""
    sampler_steps = 1000 if cfg.sample.sampler == "ddpm" else cfg.sample.steps
    # batches of one clip each: generated and untrained samples, null-label ones (class-conditional
    # models), 2 clips of the long samples, one per extension; classifier-free guidance runs two
    # forwards a step for all but the null-label and untrained ones
    conditional = cfg.unet.num_classes > 0
    guided = 2 if conditional and cfg.sample.guidance else 1
    batches = math.ceil(num_eval / sample_batch)
    clips = (guided * (batches + 2 * math.ceil(NUM_LONG / sample_batch) + NUM_EXTEND)
             + batches * (2 if conditional else 1))
    return (SAMPLE_MARGIN * clips * sampler_steps * costs["sample_step"]
            + FVD_MARGIN * 4 * num_eval * costs["i3d_clip"] + FIXED_S)


def encode_seconds(cfg: Config, costs: dict[str, float]) -> float:
    """train-diffusion first makes and encodes the training split: 2T-frame videos, two clips
    each, an encode costing about a third of a training step's forward + backward per clip."""
    n_train = cfg.data.synthetic_train
    return STEP_MARGIN * (n_train * 2 * costs["video"] + 2 * n_train / cfg.ae_train.batch_size * costs["ae_step"] / 3)


def make_plan(cfg: Config, device: DeviceChoice, budget_s: float, spent_s: float, num_eval: int,
              sample_batch: int) -> DemoPlan:
    """Measure the costs, reserve time for encoding, sampling and evaluation, and split what is
    left of the budget after `spent_s` seconds and the measurements themselves: AE_SHARE to the
    autoencoder, the rest (re-planned when it starts, `diffusion_budget`) to the diffusion model.
    The step counts are the preset's caps."""
    started = time.monotonic()
    costs = measure_costs(cfg, device, sample_batch)
    reserve = evaluation_seconds(cfg, costs, num_eval, sample_batch) + encode_seconds(cfg, costs)
    train_s = max(0.0, budget_s - spent_s - (time.monotonic() - started) - reserve)
    return DemoPlan(budget_s, cfg.ae_train.steps, cfg.diffusion_train.steps, AE_SHARE * train_s,
                    (1 - AE_SHARE) * train_s, reserve, costs)


def diffusion_budget(cfg: Config, device: DeviceChoice, plan: DemoPlan, spent_s: float, num_eval: int,
                     sample_batch: int) -> tuple[float, dict[str, float]]:
    """When the autoencoder is done: seconds the diffusion model may train (what is left of the
    budget after `spent_s` and the evaluation, re-measured now), and the new measurements."""
    started = time.monotonic()
    costs = {**plan.costs, **measure_costs(cfg, device, sample_batch, models=False)}
    reserve = evaluation_seconds(cfg, costs, num_eval, sample_batch) + encode_seconds(cfg, costs)
    return max(0.0, plan.budget_s - spent_s - (time.monotonic() - started) - reserve), costs
