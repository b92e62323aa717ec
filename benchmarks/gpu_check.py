"""One check of pvdm on a GPU, numbers in its output (benchmarks/gpu_check.sh runs it): at most
about 8 minutes on one modern GPU.

Checks: the tiny pipeline on CUDA (train-ae, train-diffusion, sample, extend, eval-fvd); bf16
against fp32 sampling of the same noise; fp16 training resumed with its gradient scaler;
gradient checkpointing on and off (peak memory, step time, same loss); `run.compile`; PVDM-L
training at micro-batch 7 inside 24 GiB (`torch.cuda.set_per_process_memory_fraction`) with its
step time and the planner's prediction; one 16x256^2 DDIM-100 sample's time and peak memory
(paper: 20 s, 5 GB on a 3090 Ti; goal: <= 5 s on an H100-class GPU); I3D videos/s.

    benchmarks/gpu_check.sh [--out DIR]      # CUDA; exits 2 with a message when torch sees no GPU
    benchmarks/gpu_check.sh --cpu            # the same logic at toy sizes on the CPU (a slow test runs it)

Prints one line per check as it ends ("[ok] name: key=value ..."), then a markdown table for
benchmarks/RESULTS.md; exit 1 when a check failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import load_avg, pvdm  # noqa: E402

GiB = 2**30


@dataclass
class Ctx:
    device: str  # cuda or cpu
    out: Path
    cpu: bool  # toy sizes (--cpu)
    log: list

    def cli(self, *args: str) -> dict:
        return pvdm(*args, "--device", self.device, log=self.log)

    def train(self, command: str, *args: str) -> dict:
        """A tiny training command; on the CPU on 16 training videos (the encode at start-up is quick)."""
        small = ["--set", "data.synthetic_train=16", "--set", "data.synthetic_test=8"] if self.cpu else []
        return self.cli(command, "--preset", "tiny", *args, *small)

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


def peak_of(ctx: Ctx, fn: Callable[[], None]) -> tuple[float, float]:
    """(seconds, peak GiB of tensors) of fn(): torch.cuda's allocator count on a GPU, LiveBytes on the CPU."""
    from pvdm_core.training.step_cost import LiveBytes

    if ctx.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        fn()
        ctx.sync()
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated() / GiB
    with LiveBytes() as live:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0, live.peak / GiB


# ------------------------------------------------------------------------------------------ checks


def pipeline(ctx: Ctx) -> dict:
    """The tiny preset end to end on the device: every command runs and gives numbers."""
    ae_steps, dm_steps = ("2", "2") if ctx.cpu else ("300", "300")
    ae = ctx.train("train-ae", "--steps", ae_steps, "--out", str(ctx.out / "ae"),
                 "--set", f"ae_train.eval_every={ae_steps}")
    dm = ctx.train("train-diffusion", "--ae", str(ctx.out / "ae"), "--steps", dm_steps,
                 "--out", str(ctx.out / "dm"), "--set", f"diffusion_train.sample_every={dm_steps}")
    s = ctx.cli("sample", "--model", str(ctx.out / "dm"), "-n", "8", "-o", str(ctx.out / "samples"), "--steps", "20")
    ctx.cli("extend", s["videos"][0], "--model", str(ctx.out / "dm"), "-o", str(ctx.out / "extended.mp4"),
            "--frames", "16")
    times = {c["command"].split()[1]: c["seconds"] for c in ctx.log[-4:]}
    result = {"ae_psnr": ae.get("test_psnr"), "dm_loss": dm.get("loss_ema"), **{f"{k}_s": v for k, v in times.items()}}
    try:
        fvd = ctx.cli("eval-fvd", str(ctx.out / "samples"), str(ctx.out / "samples"), "-n", "2" if ctx.cpu else "8")
        result.update(fvd_same_vs_same=fvd.get("fvd"), eval_fvd_s=ctx.log[-1]["seconds"])
    except SystemExit as err:  # eval-fvd needs I3D weights: say so, keep the other numbers
        result["eval_fvd"] = f"not run ({err})"
    return result


def sampling_precision(ctx: Ctx) -> dict:
    """The tiny model's samples from the same noise in fp32 and in bf16: how far apart."""
    from pvdm_core.artifacts.load import load_diffusion
    from pvdm_core.base.device import DeviceChoice
    from pvdm_core.generate.sample import decode, noise_source, sample_clip

    dev = torch.device(ctx.device)
    model = load_diffusion(ctx.out / "dm", dev)
    videos = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        choice = DeviceChoice(dev, name, dtype, False)
        z = sample_clip(model, None, noise_source(list(range(4)), "per-video", dev), model.cfg.sample, choice, batch=4)
        videos[name] = decode(model, z, choice).clamp(-1, 1).cpu()
    diff = (videos["fp32"] - videos["bf16"]).abs()
    mse = float((diff**2).mean())
    psnr = 10 * torch.log10(torch.tensor(4.0 / max(mse, 1e-12))).item()  # data range 2
    return {"mean_abs_diff": round(float(diff.mean()), 5), "max_abs_diff": round(float(diff.max()), 4),
            "psnr_db_bf16_vs_fp32": round(psnr, 2)}


def fp16_resume(ctx: Ctx) -> dict:
    """fp16 autocast with a gradient scaler, stopped and resumed: the scaler's state comes back."""
    out, steps = str(ctx.out / "ae_fp16"), ("2", "4") if ctx.cpu else ("50", "100")
    first = ctx.train("train-ae", "--steps", steps[0], "--out", out, "--set", "run.amp=fp16")
    second = ctx.train("train-ae", "--steps", steps[1], "--out", out, "--set", "run.amp=fp16")
    if second["step"] != int(steps[1]):
        raise AssertionError(f"resumed run ended at step {second['step']}, not {steps[1]}")
    scale = torch.load(Path(second["checkpoint"]), map_location="cpu", weights_only=True).get("scaler", {}).get("scale")
    return {"first_step": first["step"], "resumed_to": second["step"], "scaler_scale": scale,
            "test_psnr": second.get("test_psnr")}


def grad_checkpoint(ctx: Ctx) -> dict:
    """One AE and one UNet step with checkpointing on and off: peak memory and time."""
    from pvdm_core.base.config import load_config
    from pvdm_core.training.step_cost import build_step, warm, with_settings

    preset, micro = ("tiny", 2) if ctx.cpu else ("ucf128", 4)
    cfg = load_config(preset, None, ["ae_train.disc_start=-1", "ae_train.perceptual_weight=0"])
    out = {}
    for stage in ("ae", "diffusion"):
        for on in (False, True):
            step, optimizers, _ = build_step(with_settings(cfg, stage, on), stage, micro, torch.bfloat16, ctx.device)
            warm(optimizers)
            step()  # warm-up
            seconds, peak = peak_of(ctx, step)
            key = f"{stage}_{'on' if on else 'off'}"
            out.update({f"{key}_peak_gib": round(peak, 3), f"{key}_s": round(seconds, 3)})
            del step, optimizers
    return {"preset": preset, "micro_batch": micro, **out}


def compile_check(ctx: Ctx) -> dict:
    """run.compile on the tiny diffusion model (inductor on a GPU, eager backend on the CPU)."""
    backend, steps = ("eager", "3") if ctx.cpu else ("inductor", "200")
    runs = {}
    for name, value in (("eager", ""), ("compiled", backend)):
        r = ctx.train("train-diffusion", "--ae", str(ctx.out / "ae"), "--steps", steps,
                    "--out", str(ctx.out / f"dm_{name}"), "--set", f"run.compile='{value}'",
                    "--set", f"diffusion_train.sample_every={steps}")
        runs[name] = (r["loss_ema"], ctx.log[-1]["seconds"])
    return {"backend": backend, "eager_loss": round(runs["eager"][0], 4), "compiled_loss": round(runs["compiled"][0], 4),
            "eager_s": runs["eager"][1], "compiled_s": runs["compiled"][1]}


def pvdm_l_batch7(ctx: Ctx) -> dict:
    """PVDM-L (ucf256) training steps at micro-batch 7, bf16, inside 24 GiB; against the planner."""
    from pvdm_core.base.config import load_config
    from pvdm_core.training.step_cost import build_step, fake_step_cost, warm

    cfg = load_config("tiny" if ctx.cpu else "ucf256")
    if ctx.device == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, 24 * GiB / total))
    step, optimizers, ema_bytes = build_step(cfg, "diffusion", 7, torch.bfloat16, ctx.device)
    warm(optimizers)
    step()
    seconds, peak = peak_of(ctx, lambda: [step() for _ in range(3)])
    predicted = fake_step_cost(cfg, "diffusion", 7, torch.bfloat16)
    predicted_gib = (predicted.peak_bytes - ema_bytes) / GiB  # no EMA copy was built here
    if ctx.device == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0)
    return {"preset": cfg.preset, "step_s": round(seconds / 3, 3), "peak_gib": round(peak, 3),
            "planner_gib": round(predicted_gib, 3), "measured_over_predicted": round(peak / predicted_gib, 3)}


def sample_256(ctx: Ctx) -> dict:
    """One 16-frame 256^2 video, DDIM 100 steps, PVDM-L weights at random (time does not depend on them)."""
    from pvdm_core.artifacts.load import LoadedAE, LoadedDiffusion, build_autoencoder, build_unet
    from pvdm_core.base.config import load_config
    from pvdm_core.base.device import choose_device
    from pvdm_core.diffusion.process import NoiseSchedule
    from pvdm_core.generate.sample import decode, noise_source, sample_clip

    cfg = load_config("tiny" if ctx.cpu else "ucf256", None, [] if ctx.cpu else ["sample.steps=100"])
    choice = choose_device(ctx.device, cfg.run.amp)
    with choice.device:
        ae = LoadedAE(build_autoencoder(cfg).eval().requires_grad_(False), cfg, "random", "random")
        unet = build_unet(cfg).eval().requires_grad_(False)
    model = LoadedDiffusion(unet, ae, cfg, NoiseSchedule.from_config(cfg.diffusion), "random", (1.0, 1.0, 1.0))

    def one() -> None:
        decode(model, sample_clip(model, None, noise_source([0], "per-video", choice.device), cfg.sample, choice, batch=1), choice)

    warm_up = dataclasses.replace(cfg.sample, steps=2)  # cuDNN autotuning and allocator, not timed
    sample_clip(model, None, noise_source([0], "per-video", choice.device), warm_up, choice, batch=1)
    seconds, peak = peak_of(ctx, one)
    return {"preset": cfg.preset, "steps": cfg.sample.steps, "seconds": round(seconds, 2), "peak_gib": round(peak, 3),
            "amp": str(choice.amp_dtype)}


def i3d(ctx: Ctx) -> dict:
    """I3D feature throughput (benchmarks/fvd_throughput.py), videos/s."""
    from fvd_throughput import run

    return run(ctx.device, num_videos=2 if ctx.cpu else 256, batch_size=1 if ctx.cpu else 16, amp=not ctx.cpu)


CHECKS = [pipeline, sampling_precision, fp16_resume, grad_checkpoint, compile_check, pvdm_l_batch7, sample_256, i3d]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="toy sizes on the CPU: the logic, not the numbers")
    ap.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    args = ap.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA GPU; nothing to check here "
              "(benchmarks/gpu_check.sh --cpu runs the same logic at toy sizes on the CPU)", file=sys.stderr)
        return 2
    device = "cpu" if args.cpu else "cuda"
    name = "cpu" if args.cpu else torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Ctx(device, args.out or Path(tmp), args.cpu, [])
        rows, t_start = [], time.monotonic()
        for check in CHECKS:
            t0 = time.monotonic()
            try:
                numbers, status = check(ctx), "ok"
            except (Exception, SystemExit) as err:  # noqa: BLE001 - one check's failure must not hide the others
                numbers, status = {"error": f"{type(err).__name__}: {err}"}, "FAIL"
                traceback.print_exc()
            numbers["check_s"] = round(time.monotonic() - t0, 1)
            rows.append((check.__name__, status, numbers))
            print(f"[{status}] {check.__name__}: " + " ".join(f"{k}={v}" for k, v in numbers.items()), flush=True)
    print(f"\n{name}, torch {torch.__version__}, {time.monotonic() - t_start:.0f} s in all, load average {load_avg()}\n")
    print("| check | status | numbers |\n|---|---|---|")
    for check, status, numbers in rows:
        print(f"| {check} | {status} | " + ", ".join(f"{k} {v}" for k, v in numbers.items()) + " |")
    return 1 if any(status != "ok" for _, status, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
