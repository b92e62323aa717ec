"""The rows of benchmarks/run.py: what each runs (ROWS), how its result prints as table cells,
and the entry point of the per-row process (run_row)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from speed_bench import (bench_ae_train, bench_autoencode, bench_fvd, bench_sample, bench_unet_infer,
                         bench_unet_max_batch, bench_unet_train)
from speed_measure import Ctx, Meter, memory_guard


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


def format_row(row: Row, res: dict, device: str) -> dict:
    out = {"name": row.name, "title": row.title, "load": res.get("load", "?")}
    if "skip" in res:
        out.update(setting="", time=res["skip"], cpu="–", memory="–")
    elif "error" in res:
        out.update(setting="", time=f"failed: {res['error']}", cpu="–", memory="–")
    else:
        out["setting"], out["time"], out["cpu"], out["memory"] = row.show(res)
    return out
