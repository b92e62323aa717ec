"""Speed and memory of pvdm against the public release, side by side in one run (issue 14).

    python benchmarks/vs_release.py --release PATH --speed [--threads 2] [--rounds 2] [--only ROW,ROW]

Each measurement is one fresh process (`release_speed.py --child ...`) that builds one side's
model at full size, runs the step once to warm up, times it once more and reports the seconds
and its peak memory; the parent alternates release and pvdm processes round by round, so both
see the same machine, and reports medians and their ratio. Peak memory is how far the peak
resident set (ru_maxrss) rose above the resident set after imports: weights, activations and
gradients count, the Python/torch runtime does not. Random weights on both sides (speed does
not depend on their values). Useful work = pvdm's FLOPs (torch's FlopCounterMode, counted on the
meta device), the same for both sides; "share" = that work per second over the machine's dense
matmul rate measured in the same run (2048^2 fp32, and bf16 where the CPU has bf16 units).
"floor" = that work at the fp32 matmul rate: no fp32 implementation of the same math beats it
by much, so floor ÷ release is about the best ratio to the release this machine allows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (row name, model, mode): model picks the builder, mode the step
ROWS = {
    "unet_s_train": ("UNet-S (132M) forward + backward", "unet_s", "train"),
    "unet_l_train": ("UNet-L (528M) forward + backward", "unet_l", "train"),
    "unet_l_step": ("UNet-L sampling step (no grad, one forward, conditioned)", "unet_l", "step"),
    "ae_encode": ("AE encode 16×256²", "ae16", "encode"),
    "ae_decode": ("AE decode 16×256²", "ae16", "decode"),
    "ae_train": ("AE forward + backward 8×256²", "ae8", "train"),
}
UNET_BASE = {"unet_s": 128, "unet_l": 256}
AE_FRAMES = {"ae16": 16, "ae8": 8}


# --- one side's step -----------------------------------------------------------------------


def release_step(release: Path, model: str, mode: str) -> Callable[[], object]:
    from release_code import FULL_AE, FULL_UNET, import_release

    rel = import_release(release)
    g = torch.Generator().manual_seed(1)
    if model in UNET_BASE:
        unet = rel.DiffusionWrapper(rel.UNetModel(**{**FULL_UNET, "model_channels": UNET_BASE[model]}))
        z, cond = (torch.rand(1, 4, 2048, generator=g) * 2 - 1 for _ in range(2))
        t = torch.tensor([500])
        if mode == "step":
            unet.eval()
            return lambda: _no_grad(lambda: unet(z, cond, t))
        return lambda: unet(z, cond, t).square().mean().backward()
    frames = AE_FRAMES[model]
    ae = rel.ViTAutoencoder(FULL_AE["embed_dim"], {**FULL_AE["ddconfig"], "timesteps": frames})
    video = torch.rand(1, 3, frames, 256, 256, generator=g) * 2 - 1
    if mode == "encode":
        return lambda: _no_grad(lambda: ae.extract(video))
    if mode == "decode":
        z = torch.rand(1, 4, 2048, generator=g) * 2 - 1
        return lambda: _no_grad(lambda: ae.decode_from_sample(z))
    return lambda: ae(video)[0].square().mean().backward()


def pvdm_model(model: str):
    """pvdm's model of the row at the release's full size, and its inputs."""
    from pvdm_core.artifacts.load import build_autoencoder, build_unet
    from pvdm_core.base.config import load_config
    from pvdm_core.models.autoencoder import Latents

    g = torch.Generator().manual_seed(1)
    if model in UNET_BASE:
        cfg = load_config("ucf256", overrides=[f"unet.base_channels={UNET_BASE[model]}"])
        planes = lambda: Latents(*(torch.rand(1, 4, *s, generator=g) * 2 - 1 for s in ((32, 32), (16, 32), (16, 32))))  # noqa: E731
        return build_unet(cfg), (planes(), torch.tensor([500]), planes())
    cfg = load_config("ucf256", overrides=[f"data.frames={AE_FRAMES[model]}"])
    return build_autoencoder(cfg), (torch.rand(1, 3, AE_FRAMES[model], 256, 256, generator=g) * 2 - 1,)


def pvdm_step(model: str, mode: str) -> Callable[[], object]:
    net, inputs = pvdm_model(model)
    if model in UNET_BASE:
        if mode == "step":
            net.eval()
            return lambda: _no_grad(lambda: net(*inputs))
        return lambda: sum(o.square().mean() for o in net(*inputs)).backward()
    if mode == "encode":
        return lambda: _no_grad(lambda: net.encode(*inputs))
    if mode == "decode":
        z = _no_grad(lambda: net.encode(*inputs))
        return lambda: _no_grad(lambda: net.decode(z))
    return lambda: net(*inputs)[0].square().mean().backward()


def _no_grad(fn: Callable[[], object]) -> object:
    with torch.no_grad():
        return fn()


def useful_gflop(model: str, mode: str) -> float:
    """pvdm's FLOPs for the row, counted on meta tensors (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        step = pvdm_step(model, mode)
        with FlopCounterMode(display=False) as counter:
            step()
    return counter.get_total_flops() / 1e9


def child(release: Path, row: str, side: str, threads: int) -> dict:
    from reporting import maxrss_bytes, rss_bytes

    torch.set_num_threads(threads)
    base_rss = rss_bytes()
    _, model, mode = ROWS[row]
    step = release_step(release, model, mode) if side == "release" else pvdm_step(model, mode)
    step()  # warm-up: oneDNN primitives, allocator
    t0 = time.perf_counter()
    step()
    return {"seconds": time.perf_counter() - t0, "peak_gb": (maxrss_bytes() - base_rss) / 1e9}


# --- the parent: interleaved rounds ---------------------------------------------------------


def matmul_rates() -> dict[str, float]:
    from reporting import matmul_gflops

    rates = {"fp32": matmul_gflops()}
    if _has_bf16_units():  # without them bf16 matmuls are emulated: no rate worth quoting
        rates["bf16"] = matmul_gflops(dtype=torch.bfloat16)
    return rates


def _has_bf16_units() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def measure(release: Path, rows: list[str], rounds: int, threads: int) -> list[dict]:
    sys.path.insert(0, str(HERE))
    torch.set_num_threads(threads)
    rates = matmul_rates()
    results = []
    for row in rows:
        runs = {"release": [], "pvdm": []}
        for _ in range(rounds):  # release, pvdm, release, pvdm...: both see the same machine
            for side in runs:
                cmd = [sys.executable, __file__, "--child", row, "--side", side, "--release", str(release),
                       "--threads", str(threads)]
                out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                if out.returncode:
                    runs[side].append({"error": (out.stderr.strip().splitlines() or ["killed"])[-1]})
                else:
                    runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
        name, model, mode = ROWS[row]
        entry = {"row": row, "name": name, "gflop": useful_gflop(model, mode), "rates": rates}
        for side, items in runs.items():
            ok = [r for r in items if "error" not in r]
            entry[side] = {"seconds": statistics.median(r["seconds"] for r in ok) if ok else None,
                           "peak_gb": max(r["peak_gb"] for r in ok) if ok else None,
                           "errors": [r["error"] for r in items if "error" in r]}
        results.append(entry)
        print(_line(entry), flush=True)
    return results


def _line(e: dict) -> str:
    rel, mine = e["release"], e["pvdm"]
    ratio = mine["seconds"] / rel["seconds"] if rel["seconds"] and mine["seconds"] else float("nan")
    return f"{e['name']}: release {rel['seconds']} s, pvdm {mine['seconds']} s, ratio {ratio:.2f}"


def table(results: list[dict], threads: int, rounds: int, heading: str) -> str:
    rates = results[0]["rates"]
    rate_text = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items())
    lines = [heading, "",
             f"`python benchmarks/vs_release.py --release PATH --speed --threads {threads} --rounds {rounds}` "
             f"({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {threads} torch threads, fp32, batch 1, random "
             f"weights at full size, release commit 793172f). One fresh process per measurement, release and pvdm "
             f"alternating, {rounds} rounds; times are medians, peaks the largest. Matmul rate measured in the same run: "
             f"{rate_text}" + ("" if "bf16" in rates else " (no bf16 units on this CPU)") + ".",
             "", "| work | release | pvdm | pvdm ÷ release (time) | peak memory release / pvdm (GB) | pvdm ÷ release (memory) "
             "| useful GFLOP | share of fp32 matmul rate, release / pvdm | floor (s) | floor ÷ release |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in results:
        rel, mine = e["release"], e["pvdm"]
        if not (rel["seconds"] and mine["seconds"]):
            lines.append(f"| {e['name']} | {rel['seconds'] or rel['errors']} | {mine['seconds'] or mine['errors']} "
                         f"| – | – | – | {e['gflop']:.0f} | – | {e['gflop'] / rates['fp32']:.2f} | – |")
            continue
        share = [e["gflop"] / s / rates["fp32"] for s in (rel["seconds"], mine["seconds"])]
        floor = e["gflop"] / rates["fp32"]
        lines.append(f"| {e['name']} | {rel['seconds']:.2f} s | {mine['seconds']:.2f} s | "
                     f"**{mine['seconds'] / rel['seconds']:.2f}** | {rel['peak_gb']:.2f} / {mine['peak_gb']:.2f} | "
                     f"{mine['peak_gb'] / rel['peak_gb']:.2f} | {e['gflop']:.0f} | "
                     f"{100 * share[0]:.0f}% / {100 * share[1]:.0f}% | {floor:.2f} | {floor / rel['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description="one measurement of benchmarks/vs_release.py --speed")
    ap.add_argument("--child", choices=sorted(ROWS), required=True)
    ap.add_argument("--side", choices=["release", "pvdm"], required=True)
    ap.add_argument("--release", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    print(json.dumps(child(args.release.resolve(), args.child, args.side, args.threads)))


if __name__ == "__main__":
    main()
