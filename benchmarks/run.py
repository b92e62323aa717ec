"""Speed and memory of every pvdm stage (side by side with the release: vs_release.py --speed).

    python benchmarks/run.py [--device auto|cpu|cuda] [--quick] [--only NAME,...] [--list]

Each row runs in a fresh Python process (this file with `--row NAME`), so one row's memory
never shows up in another's peak:
- time: wall clock around the measured work, after warm-up, the median of a few repeats (fewer
  when one repeat is slow: each row has a time budget). CUDA work is synchronised before each
  clock read.
- peak memory: on CPU, how far the process's peak resident set (getrusage ru_maxrss) rose above
  its resident set right after imports, so model weights, optimizer state and activations count,
  and the Python/torch runtime does not; on CUDA, torch.cuda.max_memory_allocated.
- on CPU the models run in fp32 at batch 1; with a GPU, training rows use batch 8 and bf16 autocast.
- sampling a full 16-frame 256² clip takes hours on CPU (100-1000 UNet-L evaluations), so there
  the sampler runs a few real steps, and the per-sample figure is the median step time times the
  number of steps plus one measured AE decode, labelled "extrapolated from N steps".

Without --quick or --only the run rewrites the "## Speed" section of benchmarks/RESULTS.md (the
rest of the file is kept); --write/--no-write overrides that. --json PATH also saves the raw rows.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reporting import cpu_model, load_avg, maxrss_bytes, replace_section, rss_bytes  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SECTION = "## Speed"
GiB = 1024**3

# ---------------------------------------------------------------------------------------------
# 1. Measuring (runs inside the per-row process)
# ---------------------------------------------------------------------------------------------


class Meter:
    """Clock and peak-memory reader for one device; `baseline` is taken at construction."""

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, device
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline = torch.cuda.memory_allocated(device)
        else:
            self.baseline = rss_bytes()

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def now(self) -> float:
        self.sync()
        return time.perf_counter()

    def peak(self) -> int:
        """Peak bytes above the baseline so far."""
        if self.cuda:
            return self.torch.cuda.max_memory_allocated(self.device) - self.baseline
        return max(0, maxrss_bytes() - self.baseline)


@dataclass
class Timing:
    wall: list[float]  # seconds per timed call
    cpu: list[float]  # process CPU seconds (all threads) per timed call: less sensitive to machine load
    warm: bool  # False: the only measurement is the first (cold) call

    def summary(self, prefix: str = "") -> dict:
        return {f"{prefix}s": _median(self.wall), f"{prefix}cpu_s": _median(self.cpu), "runs": len(self.wall),
                "warm": self.warm}


def repeat(meter: Meter, fn: Callable[[], object], budget_s: float, max_reps: int = 3) -> Timing:
    """Time fn: one warm-up call, then as many timed calls as fit in budget_s (1 to max_reps).
    A warm-up slower than budget_s is itself the one (cold) measurement."""

    def once() -> tuple[float, float]:
        t0, c0 = meter.now(), time.process_time()
        fn()
        return meter.now() - t0, time.process_time() - c0

    first = once()
    if first[0] > budget_s:
        return Timing([first[0]], [first[1]], False)
    runs = [once() for _ in range(max(1, min(max_reps, int(budget_s // max(first[0], 1e-6)))))]
    return Timing([w for w, _ in runs], [c for _, c in runs], True)


def memory_guard(limit_bytes: int) -> None:
    """Exit this process before it drives the shared machine into the OOM killer."""

    def watch() -> None:
        while True:
            rss = rss_bytes()
            if rss > limit_bytes:
                print(json.dumps({"error": f"stopped at {rss / GiB:.1f} GiB resident, over the "
                                           f"{limit_bytes / GiB:.1f} GiB guard (out of memory here)"}), flush=True)
                os._exit(3)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


# ---------------------------------------------------------------------------------------------
# 2. What each row measures
# ---------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a row function gets: the device and the settings that depend on it."""

    device: object  # torch.device
    meter: Meter
    cuda: bool
    train_batch: int  # 1 on CPU, 8 on GPU
    amp: object  # torch dtype for autocast, or None (fp32)
    budget_s: float  # rough seconds a row may spend on timed repeats

    def autocast(self):
        import contextlib

        import torch

        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)


def _cfg(preset: str, **over):
    from pvdm_core.base.config import load_config

    sets = [f"{k.replace('__', '.')}={v}" for k, v in over.items()]
    return load_config(preset, overrides=sets)


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


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
    return {**timing.summary("step_"), "fwd_bwd_s": _median(fb[-len(timing.wall):]),
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
    per_step, per_step_cpu = _median(step_wall), _median(step_cpu)
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
    s = _median(timing.wall)
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


# ---------------------------------------------------------------------------------------------
# 3. The rows: what to run and how to print it
# ---------------------------------------------------------------------------------------------


def _gb(b: int | None) -> str:
    """Decimal GB (10^9 bytes), the unit of spec §5."""
    return "–" if b is None or b < 0 else f"{b / 1e9:.2f} GB"


def _s(x: float) -> str:
    return f"{x:.3g} s" if x < 100 else f"{x:.0f} s"


def _runs(r: dict) -> str:
    if not r.get("warm", True):
        return " [1 run, no warm-up]"
    return f" [median of {r['runs']}]" if r.get("runs", 1) > 1 else " [1 run]"


def _cpu(x: float | None) -> str:
    return "–" if x is None else _s(x)


@dataclass
class Row:
    name: str
    title: str
    run: Callable[[Ctx], dict]
    show: Callable[[dict], tuple[str, str, str, str]]  # -> (setting, time, CPU time, memory)
    quick: bool = False
    gpu_only: bool = False


def _show_train(r):
    return (r["setting"], f"step {_s(r['step_s'])} (fwd+bwd {_s(r['fwd_bwd_s'])}){_runs(r)}", _cpu(r.get("step_cpu_s")),
            f"{_gb(r['peak'])} (fwd+bwd {_gb(r['peak_fwd_bwd'])})")


def _show_unet_infer(r):
    return ("planes (4,32,32),(4,16,32),(4,16,32), batch 1, no grad",
            f"unconditional {_s(r['uncond_s'])}; conditional {_s(r['cond_s'])}{_runs(r)}",
            f"{_cpu(r.get('uncond_cpu_s'))}; {_cpu(r.get('cond_cpu_s'))}", _gb(r["peak"]))


def _show_sample(r):
    how = (f"extrapolated from {r['measured_steps']} steps: {r['steps']} × {_s(r['step_s'])} + decode {_s(r['decode_s'])}"
           if r["extrapolated"] else f"{r['steps']} steps + decode, measured")
    return (f"{r['steps']} UNet evaluations, batch 1", f"{_s(r['seconds'])} ({how})", _cpu(r.get("cpu_s")),
            _gb(r["peak"]))


def _show_ae(r):
    return (r["setting"], f"{_s(r['seconds'])} per batch = {r['clips_per_s']:.3g} clips/s{_runs(r)}",
            _cpu(r.get("cpu_s")), _gb(r["peak"]))


def _show_fvd(r):
    extra = f"; with mp4 decode {r['with_decode_videos_per_s']:.3g}/s" if r.get("with_decode_videos_per_s") else ""
    return (f"16×224² (from 256² clips), batch {r['batch']}, {r['videos']} videos",
            f"{r['videos_per_s']:.3g} videos/s{extra}", "–", _gb(r["peak"]))


def _show_max_batch(r):
    if r.get("max_batch", 0) == 0:
        return ("16×256² latents, bf16, full step", "batch 1 does not fit", "–", "–")
    capped = " (search cap)" if r.get("capped") else ""
    return ("16×256² latents, bf16, full step",
            f"max batch {r['max_batch']}{capped}; step {_s(r['step_s'])}", "–", _gb(r["peak"]))


def _sample_row(name: str, sampler: str, steps: int, label: str) -> Row:
    def run(ctx: Ctx) -> dict:
        return bench_sample(ctx, sampler, steps, measure_steps=None if ctx.cuda else 3)
    return Row(name, f"Sample 16×256², PVDM-L, {label}", run, _show_sample)


ROWS: list[Row] = [
    Row("ae_tiny", "AE training step, tiny", lambda c: bench_ae_train(c, "tiny"), _show_train, quick=True),
    Row("ae_ref16", "AE training step, reference", lambda c: bench_ae_train(c, "sky256"), _show_train),
    Row("ae_ref16_ckpt", "AE training step, reference, grad checkpoint",
        lambda c: bench_ae_train(c, "sky256", grad_checkpoint=True), _show_train),
    Row("ae_ref8", "AE training step, 8 frames", lambda c: bench_ae_train(c, "sky256", frames=8), _show_train),
    Row("unet_tiny", "UNet training step, tiny", lambda c: bench_unet_train(c, "tiny"), _show_train, quick=True),
    Row("unet_s", "UNet training step, PVDM-S (base 128)", lambda c: bench_unet_train(c, "S"), _show_train),
    Row("unet_l", "UNet training step, PVDM-L (base 256)", lambda c: bench_unet_train(c, "L"), _show_train),
    Row("unet_l_maxbatch", "PVDM-L largest batch in 24 GiB", lambda c: bench_unet_max_batch(c, False),
        _show_max_batch, gpu_only=True),
    Row("unet_l_maxbatch_ckpt", "PVDM-L largest batch in 24 GiB, grad checkpoint",
        lambda c: bench_unet_max_batch(c, True), _show_max_batch, gpu_only=True),
    Row("unet_l_step", "PVDM-L sampling step (one UNet evaluation)", bench_unet_infer, _show_unet_infer),
    _sample_row("sample_ddim", "ddim", 100, "DDIM 100 steps"),
    _sample_row("sample_ddpm", "ddpm", 1000, "DDPM 1000 steps"),
    _sample_row("sample_dpm", "dpm", 20, "DPM-Solver++(2M) 20 steps"),
    Row("sample_tiny", "Sample, tiny, DDIM 100 steps",
        lambda c: bench_sample(c, "ddim", 100, size="tiny"), _show_sample, quick=True),
    Row("encode_tiny", "AE encode, tiny", lambda c: bench_autoencode(c, "tiny", "encode"), _show_ae, quick=True),
    Row("encode_ref", "AE encode, reference", lambda c: bench_autoencode(c, "sky256", "encode"), _show_ae),
    Row("decode_ref", "AE decode, reference", lambda c: bench_autoencode(c, "sky256", "decode"), _show_ae),
    Row("fvd", "FVD features (I3D)", bench_fvd, _show_fvd),
]
BY_NAME = {r.name: r for r in ROWS}


def run_row(name: str, device_arg: str, mem_limit: int, threads: int = 0) -> dict:
    """Entry point of the per-row process: measure, return the raw result."""
    import torch

    from pvdm_core.base.device import choose_device

    import pvdm_core.diffusion.process, pvdm_core.evaluation.fvd, pvdm_core.generate.sample  # noqa: F401, E401
    import pvdm_core.training.losses, pvdm_core.training.train_ae  # noqa: F401, E401

    if threads > 0:
        torch.set_num_threads(threads)
    if mem_limit > 0:
        memory_guard(mem_limit)
    device = choose_device(None if device_arg == "auto" else device_arg, "off").device
    cuda = device.type == "cuda"
    ctx = Ctx(device, Meter(device), cuda, 8 if cuda else 1, torch.bfloat16 if cuda else None,
              budget_s=20.0 if cuda else 45.0)
    row = BY_NAME[name]
    if row.gpu_only and not cuda:
        return {"skip": "not measured (no GPU)"}
    try:
        out = row.run(ctx)
    except (torch.cuda.OutOfMemoryError, MemoryError) as e:
        return {"error": f"out of memory ({type(e).__name__})"}
    except RuntimeError as e:  # the CPU allocator's failure is a plain RuntimeError
        if "allocate" not in str(e):
            raise
        return {"error": f"out of memory ({str(e).splitlines()[0][:120]})"}
    out["torch_threads"] = torch.get_num_threads()
    return out


# ---------------------------------------------------------------------------------------------
# 4. The driver: one process per row, a table, the Speed section of RESULTS.md
# ---------------------------------------------------------------------------------------------


def machine_info(device_arg: str) -> dict:
    import torch

    mem = _meminfo()
    gpu = None
    if device_arg != "cpu" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        gpu = f"{p.name}, {p.total_memory / GiB:.0f} GiB"
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gib": round(mem.get("MemTotal", 0) / GiB, 1),
            "gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def spawn_row(name: str, device_arg: str, mem_limit: int, timeout: float, threads: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--row", name, "--device", device_arg,
           "--mem-limit-gib", f"{mem_limit / GiB:.2f}", "--threads", str(threads)]
    load = load_avg()
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "load": load, "wall_s": timeout}
    res = None
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            res = json.loads(line)
            break
    if res is None:
        why = f"killed by signal {-p.returncode} (out of memory?)" if p.returncode < 0 else f"exit {p.returncode}"
        tail = (p.stderr.strip().splitlines() or [""])[-1][:200]
        res = {"error": f"{why}: {tail}" if tail else why}
    res["load"], res["wall_s"] = load, time.perf_counter() - t0
    return res


def format_row(row: Row, res: dict, device: str) -> dict:
    out = {"name": row.name, "title": row.title, "load": res.get("load", "?")}
    if "skip" in res:
        out.update(setting="", time=res["skip"], cpu="–", memory="–")
    elif "error" in res:
        out.update(setting="", time=f"failed: {res['error']}", cpu="–", memory="–")
    else:
        out["setting"], out["time"], out["cpu"], out["memory"] = row.show(res)
    return out


COLUMNS = {"title": "Row", "setting": "Setting", "time": "Time (wall)", "cpu": "CPU time", "memory": "Peak memory",
           "load": "Load"}


def print_table(lines: list[dict], title: str) -> None:
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        for ln in lines:
            print(" | ".join(ln[k] for k in COLUMNS))
        return
    t = Table(title=title, show_lines=True)
    for col in COLUMNS.values():
        t.add_column(col, overflow="fold")
    for ln in lines:
        t.add_row(*(escape(str(ln[k])) for k in COLUMNS))
    Console(width=200).print(t)


def speed_section(lines: list[dict], info: dict, command: str, load_before: str, load_after: str, total_s: float,
                  device: str) -> str:
    gpu = info["gpu"] or "none (no GPU was available in this session; GPU-only rows are not measured)"
    md = [SECTION, "",
          f"Measured with `{command}` on {info['date']} ({total_s / 60:.1f} min in all).", "",
          f"- Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM; GPU: {gpu}",
          f"- Software: torch {info['torch']}, Python {info['python']}; device `{device}`; torch threads per "
          f"row: {info['threads']}",
          f"- Load average (1/5/15 min) before: {load_before}, after: {load_after}. The machine is shared; "
          "timings under load above the core count are pessimistic.",
          *_caveat(info, [load_before, load_after, *(ln["load"] for ln in lines)], device),
          "- Method (benchmarks/README.md): one fresh process per row; wall-clock median of the timed repeats "
          "after one warm-up; CPU time = process CPU seconds (all threads) of the same work, which a loaded "
          "machine inflates far less than wall time; peak memory in GB (10^9 bytes, as in spec §5) = rise "
          "of peak RSS (ru_maxrss) above the process's RSS after imports on CPU, "
          "torch.cuda.max_memory_allocated on CUDA. CPU rows: fp32, batch 1. Training step = forward + "
          "backward + AdamW step, with forward + backward alone in brackets (its peak taken before AdamW "
          "allocates its state). "
          "No EMA update, no LPIPS in the AE loss (L1 only). Sampling on CPU is extrapolated from 3 real "
          "sampler steps plus one measured AE decode.",
          "- The release is compared in the same run, on the same machine, only in \"Speed: pvdm vs the "
          "release, side by side\" (`vs_release.py --speed`); figures from another day or machine are no "
          "comparison.", "",
          "| " + " | ".join(COLUMNS.values()) + " |",
          "|" + "---|" * len(COLUMNS)]
    esc = lambda s: str(s).replace("|", "\\|")
    for ln in lines:
        md.append("| " + " | ".join(esc(ln[k]) for k in COLUMNS) + " |")
    return "\n".join(md) + "\n"


def _caveat(info: dict, loads: list[str], device: str) -> list[str]:
    """A warning line when CPU timings were taken on one thread or a machine busier than its cores."""
    if device != "cpu":
        return []
    busiest = max((float(x) for ld in loads for x in str(ld).split("/") if x.replace(".", "", 1).isdigit()),
                  default=0.0)
    parts = []
    if info.get("threads") == 1:
        parts.append("each row used 1 torch thread")
    if busiest > (info.get("cores") or 1):
        parts.append(f"other jobs kept the load average up to {busiest:.1f} on {info.get('cores')} cores")
    if not parts:
        return []
    return [f"- **Caveat**: {'; '.join(parts)}. Wall times are therefore "
            "pessimistic (one thread instead of two can double a time, and sharing the cores adds more); "
            "the CPU-time column is the steadier figure. Memory is unaffected."]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="only the tiny rows (a smoke test, < 1 min)")
    ap.add_argument("--only", default="", help="comma-separated row names (see --list)")
    ap.add_argument("--list", action="store_true", help="print the row names and exit")
    ap.add_argument("--write", dest="write", action="store_true", default=None, help="write RESULTS.md's Speed section")
    ap.add_argument("--no-write", dest="write", action="store_false")
    ap.add_argument("--json", type=Path, default=None, help="also save the raw results here")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per row before it is stopped")
    ap.add_argument("--mem-limit-gib", type=float, default=None,
                    help="stop a row whose resident memory passes this (default: available RAM - 1 GiB)")
    ap.add_argument("--threads", type=int, default=-1,
                    help="torch CPU threads per row: 0 = torch's default (one per core); default -1 = auto: "
                         "torch's default on an idle machine, 1 when the load average is above half the cores "
                         "(several OpenMP threads per process on a busy machine wait on each other, many times slower)")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="re-print (and with --write, re-write) the table of an earlier --json file; measures nothing")
    ap.add_argument("--row", default=None, help=argparse.SUPPRESS)  # internal: run one row, print JSON
    args = ap.parse_args(argv)

    if args.row is not None:
        limit = int((args.mem_limit_gib or 0) * GiB)
        print(json.dumps(run_row(args.row, args.device, limit, args.threads), default=str), flush=True)
        return 0

    if args.from_json is not None:
        return render_saved(args.from_json, bool(args.write))
    if args.list:
        for r in ROWS:
            print(f"{r.name:22s} {r.title}{'  [quick]' if r.quick else ''}{'  [GPU only]' if r.gpu_only else ''}")
        return 0
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            print(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}", file=sys.stderr)
            return 2
        rows = [BY_NAME[n] for n in names]
    else:
        rows = [r for r in ROWS if r.quick or not args.quick]
    write = args.write if args.write is not None else not (args.quick or args.only)

    info = machine_info(args.device)
    device = "cuda" if info["gpu"] else "cpu"
    if args.device == "cuda" and device != "cuda":
        print("--device cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.threads < 0:  # auto
        load1, cores = os.getloadavg()[0], os.cpu_count() or 1
        args.threads = 1 if device == "cpu" and load1 > cores / 2 else 0
        if args.threads == 1:
            print(f"load average {load1:.1f} on {cores} cores: 1 torch thread per row (--threads 0 to use all)",
                  file=sys.stderr)
    info["threads"] = args.threads or "torch default"
    mem_limit = int((args.mem_limit_gib or max(1.0, _meminfo().get("MemAvailable", 8 * GiB) / GiB - 1.0)) * GiB)
    command = "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:]))
    print(f"{info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, GPU: {info['gpu'] or 'none'}, "
          f"torch {info['torch']}; load {load_avg()}; memory guard {mem_limit / GiB:.1f} GiB", flush=True)
    load_before, t0 = load_avg(), time.perf_counter()
    results, lines = {}, []
    for row in rows:
        if row.gpu_only and device != "cuda":
            res = {"skip": "not measured (no GPU)", "load": load_avg()}
        else:
            print(f"[{row.name}] ...", end=" ", flush=True)
            res = spawn_row(row.name, device, mem_limit, args.timeout, args.threads)
            print(f"{res.get('wall_s', 0):.0f} s" + (f" ({res['error']})" if "error" in res else ""), flush=True)
        results[row.name] = res
        lines.append(format_row(row, res, device))
    total = time.perf_counter() - t0
    load_after = load_avg()
    info["threads"] = next((r["torch_threads"] for r in results.values() if "torch_threads" in r), info["threads"])
    run = {"machine": info, "command": command, "device": device, "load_before": load_before,
           "load_after": load_after, "total_s": total, "rows": results}
    if args.json:
        args.json.write_text(json.dumps(run, indent=2, default=str))
    return render(run, lines, write)


def render(run: dict, lines: list[dict], write: bool) -> int:
    print_table(lines, f"pvdm speed ({run['device']}, {run['total_s'] / 60:.1f} min, "
                       f"load {run['load_before']} -> {run['load_after']})")
    if write:
        replace_section(RESULTS, SECTION, speed_section(lines, run["machine"], run["command"], run["load_before"], run["load_after"],
                                    run["total_s"], run["device"]))
        print(f"wrote the Speed section of {RESULTS}")
    return 0


def render_saved(path: Path, write: bool) -> int:
    run = json.loads(path.read_text())
    lines = [format_row(BY_NAME[name], res, run["device"]) for name, res in run["rows"].items() if name in BY_NAME]
    return render(run, lines, write)


if __name__ == "__main__":
    sys.exit(main())
