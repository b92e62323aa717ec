"""What each row of benchmarks/run.py measures: training steps of the autoencoder and the UNet,
PVDM-L's largest batch in 24 GiB, a sampling step, a whole sample, AE encode/decode and I3D
features. Each bench_* takes a Ctx and returns the row's raw numbers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

from speed_measure import GiB, Ctx, repeat

HERE = Path(__file__).resolve().parent


def _cfg(preset: str, **over):
    from pvdm_core.base.config import load_config

    sets = [f"{k.replace('__', '.')}={v}" for k, v in over.items()]
    return load_config(preset, overrides=sets)


def _train_rows(ctx: Ctx, loss_fn: Callable[[], object], opt, max_reps: int = 3) -> dict:
    """Time fwd+bwd and the whole step (fwd+bwd+optimizer step) with `repeat`'s rules; peak
    memory of the first fwd+bwd (taken before any optimizer state exists) and of the whole run."""
    m = ctx.meter
    fb: list[float] = []
    peak_fb = None

    def step() -> None:
        nonlocal peak_fb
        t0 = m.now()
        with ctx.autocast():
            loss = loss_fn()
        loss.backward()
        fb.append(m.now() - t0)
        if peak_fb is None:
            peak_fb = m.peak()
        opt.step()
        opt.zero_grad(set_to_none=True)

    timing = repeat(m, step, ctx.budget_s, max_reps)
    return {**timing.summary("step_"), "fwd_bwd_s": median(fb[-len(timing.wall):]),
            "peak_fwd_bwd": peak_fb, "peak": m.peak()}


def bench_ae_train(ctx: Ctx, preset: str, frames: int | None = None, grad_checkpoint: bool = False) -> dict:
    import torch

    from pvdm_core.artifacts.load import build_autoencoder, count_parameters
    from pvdm_core.training.losses import l1_loss

    cfg = _cfg(preset) if frames is None else _cfg(preset, data__frames=frames)
    torch.manual_seed(0)
    model = build_autoencoder(cfg).to(ctx.device).train()
    model.set_grad_checkpoint(grad_checkpoint)
    tc = cfg.ae_train
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    r = cfg.data.resolution
    x = torch.rand(ctx.train_batch, 3, cfg.data.frames, r, r, device=ctx.device) * 2 - 1

    def loss_fn():
        recon, _ = model(x)
        return tc.l1_weight * l1_loss(recon.float(), x)

    out = _train_rows(ctx, loss_fn, opt)
    return {**out, "setting": f"{cfg.data.frames}×{r}², batch {ctx.train_batch}", "params": count_parameters(model)}


def _latents(cfg, batch: int, device, seed: int = 0):
    """Random latents in [-1, 1] of the preset's shapes: z_s (C, h, w), z_h (C, T, w), z_w (C, T, h)."""
    import torch

    from pvdm_core.models.autoencoder import Latents

    c, t, h = cfg.ae.latent_channels, cfg.data.frames, cfg.data.resolution // cfg.ae.patch_size
    g = torch.Generator().manual_seed(seed)
    return Latents(*(torch.randn((batch, *s), generator=g).clamp(-1, 1).to(device) for s in ((c, h, h), (c, t, h), (c, t, h))))


def _unet_cfg(size: str):
    if size == "tiny":
        return _cfg("tiny")
    return _cfg("sky256", unet__base_channels=256 if size == "L" else 128)


def _diffusion_loss_fn(unet, cfg, batch: int, device):
    """A conditional training loss: every example sees its previous clip's latents (lambda = 1)."""
    import torch

    from pvdm_core.diffusion.process import NoiseSchedule, diffusion_loss

    schedule = NoiseSchedule.from_config(cfg.diffusion)
    z, z_prev, noise = _latents(cfg, batch, device, 0), _latents(cfg, batch, device, 1), _latents(cfg, batch, device, 2)
    t = torch.randint(0, schedule.num_timesteps, (batch,), generator=torch.Generator().manual_seed(3)).to(device)
    mask = torch.ones(batch, dtype=torch.bool)
    return lambda: diffusion_loss(unet, z, z_prev, t, noise, mask, schedule)


def bench_unet_train(ctx: Ctx, size: str) -> dict:
    import torch

    from pvdm_core.artifacts.load import build_unet, count_parameters

    cfg = _unet_cfg(size)
    torch.manual_seed(0)
    unet = build_unet(cfg).to(ctx.device).train()
    tc = cfg.diffusion_train
    opt = torch.optim.AdamW(unet.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    out = _train_rows(ctx, _diffusion_loss_fn(unet, cfg, ctx.train_batch, ctx.device), opt)
    shapes = [tuple(p.shape[1:]) for p in _latents(cfg, 1, "cpu")]
    return {**out, "setting": f"planes {', '.join(map(str, shapes))}, batch {ctx.train_batch}, conditional",
            "params": count_parameters(unet)}


def bench_unet_max_batch(ctx: Ctx, grad_checkpoint: bool, limit: int = 24 * GiB, cap: int = 256) -> dict:
    """Largest PVDM-L training batch whose full step (fwd+bwd+AdamW, bf16 autocast) keeps
    torch.cuda.max_memory_allocated within `limit`; exponential then binary search."""
    import torch

    from pvdm_core.artifacts.load import build_unet

    if not ctx.cuda:
        return {"skip": "not measured (no GPU)"}
    cfg = _unet_cfg("L")
    unet = build_unet(cfg).to(ctx.device).train()
    unet.grad_checkpoint = grad_checkpoint
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, weight_decay=0.01)
    tried: dict[int, tuple[bool, int, float]] = {}

    def trial(b: int) -> bool:
        opt.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(ctx.device)
        try:
            loss_fn = _diffusion_loss_fn(unet, cfg, b, ctx.device)
            t0 = ctx.meter.now()
            with ctx.autocast():
                loss = loss_fn()
            loss.backward()
            opt.step()
            dt = ctx.meter.now() - t0
            peak = torch.cuda.max_memory_allocated(ctx.device)
            ok = peak <= limit
        except torch.cuda.OutOfMemoryError:
            peak, dt, ok = -1, None, False
        loss = loss_fn = None
        opt.zero_grad(set_to_none=True)
        tried[b] = (ok, peak, dt)
        return ok

    lo, hi = 0, None
    b = 1
    while b <= cap:
        if trial(b):
            lo, b = b, b * 2
        else:
            hi = b
            break
    hi = hi or cap + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if trial(mid) else (lo, mid)
    if lo == 0:
        return {"max_batch": 0, "tried": tried}
    trial(lo)  # time it once more, warm
    ok, peak, dt = tried[lo]
    return {"max_batch": lo, "peak": peak, "step_s": dt, "capped": lo >= cap,
            "tried": {k: v[1] for k, v in sorted(tried.items())}}


def _sampling_models(ctx: Ctx, with_ae: bool = True, size: str = "L"):
    import torch

    from pvdm_core.artifacts.load import build_autoencoder, build_unet

    cfg = _unet_cfg(size)
    torch.manual_seed(0)
    unet = build_unet(cfg).to(ctx.device).eval().requires_grad_(False)
    ae = build_autoencoder(cfg).to(ctx.device).eval().requires_grad_(False) if with_ae else None
    return cfg, unet, ae


class _Stop(Exception):
    pass


def bench_unet_infer(ctx: Ctx) -> dict:
    """One PVDM-L sampling step's network evaluation, unconditional and conditional (batch 1)."""
    import torch

    cfg, unet, _ = _sampling_models(ctx, with_ae=False)
    x, cond = _latents(cfg, 1, ctx.device, 0), _latents(cfg, 1, ctx.device, 1)
    t = torch.full((1,), 500, device=ctx.device)
    with torch.no_grad(), ctx.autocast():
        unc = repeat(ctx.meter, lambda: unet(x, t, None), ctx.budget_s)
        con = repeat(ctx.meter, lambda: unet(x, t, cond), ctx.budget_s)
    return {**unc.summary("uncond_"), **con.summary("cond_"), "runs": min(len(unc.wall), len(con.wall)),
            "warm": unc.warm and con.warm, "peak": ctx.meter.peak()}


def bench_sample(ctx: Ctx, sampler: str, steps: int, size: str = "L", measure_steps: int | None = None) -> dict:
    """Seconds and peak memory for one 16-frame clip: the sampler, then the AE decode. On CPU only
    `measure_steps` steps run (after one warm-up step) and the rest is extrapolated."""
    import torch

    from pvdm_core.diffusion.process import NoiseSchedule
    from pvdm_core.diffusion.samplers import sample as run_sampler
    from pvdm_core.models.autoencoder import Latents

    cfg, unet, ae = _sampling_models(ctx, size=size)
    schedule = NoiseSchedule.from_config(cfg.diffusion)
    x_T = _latents(cfg, 1, ctx.device, 0)
    total = schedule.num_timesteps if sampler == "ddpm" else steps
    stamps: list[tuple[float, float]] = []  # (wall, process CPU) after each step
    last = {}

    def model_fn(x, t):
        with ctx.autocast():
            return Latents(*unet(x, t, None)).float()

    def callback(info: dict) -> None:
        stamps.append((ctx.meter.now(), time.process_time()))
        last["x0"] = info["x0"]
        if measure_steps is not None and len(stamps) >= measure_steps:
            raise _Stop

    with torch.no_grad():
        with ctx.autocast():  # warm-up: one network evaluation
            unet(x_T, torch.full((1,), schedule.num_timesteps - 1, device=ctx.device), None)
        t0, c0 = ctx.meter.now(), time.process_time()
        try:
            z = run_sampler(model_fn, x_T, schedule, sampler, steps, 1.0, generator=torch.Generator().manual_seed(0),
                            callback=callback)
        except _Stop:
            z = last["x0"]
        steps_done = len(stamps)
        marks = [(t0, c0), *stamps]
        step_wall = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
        step_cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:])]
        t1, c1 = ctx.meter.now(), time.process_time()
        with ctx.autocast():
            ae.decode(Latents(*z)).float()
        decode_s, decode_cpu = ctx.meter.now() - t1, time.process_time() - c1
    full = steps_done >= total
    per_step, per_step_cpu = median(step_wall), median(step_cpu)
    seconds = (t1 - t0 if full else per_step * total) + decode_s
    cpu_s = (c1 - c0 if full else per_step_cpu * total) + decode_cpu
    return {"seconds": seconds, "cpu_s": cpu_s, "steps": total, "measured_steps": steps_done, "extrapolated": not full,
            "step_s": per_step, "step_cpu_s": per_step_cpu, "decode_s": decode_s, "decode_cpu_s": decode_cpu,
            "peak": ctx.meter.peak()}


def bench_autoencode(ctx: Ctx, preset: str, what: str) -> dict:
    """AE encode or decode of 16×R² clips (batch 1 on CPU, 8 on GPU), no grad, eval mode."""
    import torch

    from pvdm_core.artifacts.load import build_autoencoder

    cfg = _cfg(preset)
    ae = build_autoencoder(cfg).to(ctx.device).eval().requires_grad_(False)
    b, r = ctx.train_batch, cfg.data.resolution
    x = torch.rand(b, 3, cfg.data.frames, r, r, device=ctx.device) * 2 - 1
    with torch.no_grad(), ctx.autocast():
        z = ae.encode(x)
        fn = (lambda: ae.encode(x)) if what == "encode" else (lambda: ae.decode(z))
        timing = repeat(ctx.meter, fn, ctx.budget_s)
    s = median(timing.wall)
    return {**timing.summary(), "seconds": s, "clips_per_s": b / s, "batch": b,
            "setting": f"{cfg.data.frames}×{r}², batch {b}", "peak": ctx.meter.peak()}


def bench_fvd(ctx: Ctx) -> dict:
    """I3D feature throughput on 16-frame clips resized to 224²: benchmarks/fvd_throughput.py's
    `run` when present, else a plain loop over load_i3d + compute_features."""
    sys.path.insert(0, str(HERE))
    try:
        import fvd_throughput
    except ImportError:
        fvd_throughput = None
    if fvd_throughput is not None:
        row = fvd_throughput.run(str(ctx.device), None)
        return {"videos_per_s": row["i3d_only_videos_per_s"], "with_decode_videos_per_s": row.get("with_decode_videos_per_s"),
                "batch": row.get("batch"), "videos": row.get("videos"), "source": "fvd_throughput.run",
                "peak": ctx.meter.peak()}
    import numpy as np
    import torch

    from pvdm_core.evaluation.fvd import compute_features, load_i3d

    extractor, _ = load_i3d(device=ctx.device)
    b = 16 if ctx.cuda else 1
    n = 64 if ctx.cuda else 6
    clip = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (16, 256, 256, 3), dtype=np.uint8))
    compute_features(extractor, [clip] * b, b)
    t0 = ctx.meter.now()
    compute_features(extractor, [clip] * n, b)
    s = ctx.meter.now() - t0
    return {"videos_per_s": n / s, "batch": b, "videos": n, "source": "own loop", "peak": ctx.meter.peak()}
