"""Speed levers on a full-size sampling step, measured against each other in one process.

    python benchmarks/levers.py [--threads 2] [--repeats 3] [--base 256] [--compile] [--no-write]

Variants of one PVDM-L (or --base 128: PVDM-S) conditioned UNet evaluation, batch 1, timed
round-robin (each round runs every variant once, so all see the same machine), medians; the
error column is max |out - baseline| / max |baseline| over the three planes:

- oneDNN per plane group: the baseline (PVDM_PLANE_GEMM=0, as before issue 14);
- plane GEMM: the default (small planes' convolutions as one GEMM over all planes);
- + channels_last: weights and inputs in NHWC, which oneDNN prefers on some CPUs;
- bf16 autocast: matmuls and convolutions in bfloat16 (fast only on CPUs with bf16 units);
- torch.compile (inductor), with --compile: its compile time is reported too (minutes on CPU).

Writes "## Speed levers, PVDM-L" (or PVDM-S) in RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from release_speed import _has_bf16_units, pvdm_model  # noqa: E402
from reporting import load_avg, matmul_gflops, replace_section  # noqa: E402

SECTION = "## Speed levers, {model}"


def variants(base: int, with_compile: bool) -> tuple[dict[str, Callable[[], tuple]], dict[str, float]]:
    """name -> a no-grad step returning the output planes; and one-off setup seconds per name."""
    unet, (x, t, cond) = pvdm_model("unet_s" if base == 128 else "unet_l")
    unet.eval().requires_grad_(False)
    with torch.no_grad():  # the zero-initialised output conv would make every output 0
        for p in unet.parameters():
            if not p.any():
                p.normal_(0, 0.02)

    def gemm(flag: str, net=unet, args=(x, t, cond)) -> Callable[[], tuple]:
        def step():
            os.environ["PVDM_PLANE_GEMM"] = flag
            with torch.no_grad():
                return tuple(net(*args))
        return step

    def bf16() -> tuple:
        os.environ["PVDM_PLANE_GEMM"] = "1"
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return tuple(o.float() for o in unet(x, t, cond))

    nhwc = copy.deepcopy(unet).to(memory_format=torch.channels_last)
    to_nhwc = lambda planes: type(planes)(*(p.contiguous(memory_format=torch.channels_last) for p in planes))  # noqa: E731
    out = {"oneDNN per plane group (before)": gemm("0"), "plane GEMM (default)": gemm("1"),
           "plane GEMM + channels_last": gemm("1", nhwc, (to_nhwc(x), t, to_nhwc(cond))), "bf16 autocast": bf16}
    setup = {}
    if with_compile:
        compiled = torch.compile(unet)
        t0 = time.perf_counter()
        gemm("1", compiled)()
        setup["torch.compile (inductor)"] = time.perf_counter() - t0
        out["torch.compile (inductor)"] = gemm("1", compiled)
    return out, setup


def planes_err(a: tuple, b: tuple) -> float:
    from vs_release import rel_err

    return max(rel_err(p, q) for p, q in zip(a, b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--base", type=int, choices=[128, 256], default=256)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (adds minutes of compiling)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rate = matmul_gflops()
    steps, setup = variants(args.base, args.compile)
    baseline = next(iter(steps))
    outputs = {name: step() for name, step in steps.items()}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    base_s = statistics.median(times[baseline])
    model = "PVDM-L (528M)" if args.base == 256 else "PVDM-S (132M)"
    lines = [SECTION.format(model=model.split()[0]), "",
             f"`python benchmarks/levers.py --threads {args.threads} --repeats {args.repeats} --base {args.base}"
             f"{' --compile' if args.compile else ''}` ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
             f"{args.threads} torch threads, {model} conditioned sampling step, batch 1, fp32 unless stated; "
             f"fp32 matmul rate {rate:.0f} GFLOP/s; bf16 units: {'yes' if _has_bf16_units() else 'no'}; "
             f"load average at the end {load_avg()}). Medians of {args.repeats} round-robin rounds.", "",
             "| variant | time (s) | ÷ before | max rel. error vs before | one-off cost |", "|---|---|---|---|---|"]
    for name in steps:
        s = statistics.median(times[name])
        once = f"{setup[name]:.0f} s compiling" if name in setup else "–"
        lines.append(f"| {name} | {s:.2f} | {s / base_s:.2f} | {planes_err(outputs[name], outputs[baseline]):.1e} | {once} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        replace_section(HERE / "RESULTS.md", lines[0], text)


if __name__ == "__main__":
    main()
