"""Where a step's time goes: torch.profiler over a PVDM-L sampling step and a full-size AE step.

    python benchmarks/step_profile.py [--threads 2] [--only unet_l_step,ae_encode] [--no-write]

The UNet row is profiled twice in one process, before and after the plane GEMM (PVDM_PLANE_GEMM=0
and =1), the AE (which it does not touch) once; each after one warm-up. The operators' self CPU time is
summed into kinds (convolution, matmul, attention, norms, elementwise, layout copies, other),
so a lever's effect shows where it lands. Writes "## Where a step's time goes" in RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from release_speed import ROWS, pvdm_step, useful_gflop  # noqa: E402
from reporting import load_avg, matmul_gflops, replace_section  # noqa: E402

SECTION = "## Where a step's time goes"
PROFILED = ("unet_l_step", "ae_encode")
KINDS = {  # aten operator -> kind; anything else is "other"
    "convolution": ("mkldnn_convolution", "_slow_conv2d_forward", "convolution_backward", "im2col", "col2im"),
    "matmul": ("mm", "addmm", "bmm", "baddbmm"),
    "attention": ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention_for_cpu_backward"),
    "norms": ("native_group_norm", "native_layer_norm", "native_group_norm_backward", "native_layer_norm_backward"),
    "elementwise": ("add", "add_", "mul", "mul_", "silu", "gelu", "neg", "tanh", "sigmoid", "sub", "div", "cos", "sin",
                    "avg_pool2d", "upsample_nearest2d", "silu_backward", "gelu_backward"),
    "layout copies": ("copy_", "cat", "stack", "clone", "contiguous", "flip"),
}


def kind_of(op: str) -> str:
    name = op.removeprefix("aten::")
    return next((k for k, ops in KINDS.items() if name in ops), "other")


def profile_row(row: str, gemm: str) -> dict[str, float]:
    """Self CPU seconds per kind of one step, and the step's wall time."""
    os.environ["PVDM_PLANE_GEMM"] = gemm
    _, model, mode = ROWS[row]
    step = pvdm_step(model, mode)
    step()  # warm-up
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    wall = time.perf_counter() - t0
    seconds: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        seconds[kind_of(event.key)] += event.self_cpu_time_total / 1e6
    return {"wall": wall, **seconds}


def table(results: dict[str, dict[str, dict[str, float]]], threads: int, rate: float) -> str:
    kinds = [*KINDS, "other"]
    lines = [SECTION, "",
             f"`python benchmarks/step_profile.py --threads {threads}` ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
             f"{threads} torch threads, fp32, batch 1, random weights at full size; load average at the end "
             f"{load_avg()}; fp32 matmul rate in the same run {rate:.0f} GFLOP/s). Self CPU seconds per kind of "
             f"operator under torch.profiler (which adds a little overhead to the wall time); before = "
             f"`PVDM_PLANE_GEMM=0` (each plane group's convolution a oneDNN call, as until this change), after = the "
             f"default.", "",
             "| step | | wall (s) | " + " | ".join(kinds) + " | share of matmul rate |",
             "|---|---|---|" + "---|" * len(kinds) + "---|"]
    for row, by in results.items():
        _, model, mode = ROWS[row]
        gflop = useful_gflop(model, mode)
        for label, r in by.items():
            total = sum(r.get(k, 0.0) for k in kinds)
            cells = " | ".join(f"{r.get(k, 0.0):.2f} ({100 * r.get(k, 0.0) / total:.0f}%)" for k in kinds)
            lines.append(f"| {ROWS[row][0]} | {label} | {r['wall']:.2f} | {cells} | {100 * gflop / r['wall'] / rate:.0f}% |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help=f"comma-separated rows of {', '.join(PROFILED)}; implies --no-write")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [r.strip() for r in args.only.split(",") if r.strip()] or list(PROFILED)
    rate = matmul_gflops()
    results = {}
    for row in rows:
        unet = ROWS[row][1].startswith("unet")
        results[row] = {"before": profile_row(row, "0"), "after": profile_row(row, "1")} if unet else {"": profile_row(row, "1")}
        print(row, {k: {n: round(v, 2) for n, v in r.items()} for k, r in results[row].items()}, flush=True)
    text = table(results, args.threads, rate)
    print(text)
    if not (args.no_write or args.only):
        replace_section(HERE / "RESULTS.md", SECTION, text)


if __name__ == "__main__":
    main()
