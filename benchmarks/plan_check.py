"""`pvdm plan`'s memory prediction against the measured peak of the same training step on the CPU.

For each row: the planner's peak (one steady-state step on fake tensors, pvdm_core/training/step_cost.py),
and, in a fresh process, the same step run for real: models and AdamW state built, then one
forward, backward and optimizer step; measured is how far the peak resident set rose above the
resident set before the models were built (the kernel's VmHWM, reset first through
/proc/self/clear_refs). glibc's mmap threshold is pinned at 128 KiB (MALLOC_MMAP_THRESHOLD_) so
that freed tensors leave the resident set, as they leave torch.cuda.memory_allocated; with glibc's
default adaptive threshold freed blocks may stay in the heap and the resident set overstates the
live tensors. The EMA copy, which the planner adds without building it, is left out of both.

    python benchmarks/plan_check.py            # every row, prints the table (about 10 min on one shared core)
    python benchmarks/plan_check.py --quick    # the tiny rows only
    python benchmarks/plan_check.py --write    # and rewrite the section of RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import ROOT, cpu_model, load_avg, replace_section  # noqa: E402

HEADING = "## Memory planner: predicted against measured peaks (CPU)"
# (name, preset, --set overrides, stage, micro-batch, amp)
ROWS = [
    ("tiny AE", "tiny", [], "ae", 8, "off"),
    ("tiny diffusion", "tiny", [], "diffusion", 16, "off"),
    ("tiny diffusion, bf16", "tiny", [], "diffusion", 16, "bf16"),
    ("ucf128 AE, GAN phase, checkpointing", "ucf128", ["ae_train.grad_checkpoint=true"], "ae", 1, "off"),
    ("ucf256 PVDM-S diffusion", "ucf256", ["unet.base_channels=128"], "diffusion", 8, "off"),
    ("ucf256 PVDM-L diffusion, bf16", "ucf256", [], "diffusion", 1, "bf16"),
]
QUICK = 3  # the tiny rows


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def measure(preset: str, sets: list[str], stage: str, micro: int, amp: str) -> dict:
    """Run in a fresh process: the real step's resident-set rise and the fake-tensor prediction."""
    import torch

    from pvdm_core.base.config import load_config
    from pvdm_core.training.step_cost import build_step, fake_step_cost, precision_of, warm

    torch.set_num_threads(1)
    cfg = load_config(preset, None, [*sets, f"run.amp='{amp}'"])
    dtype = precision_of(cfg.run.amp)
    predicted = fake_step_cost(cfg, stage, micro, dtype)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the resident set now
    before = status_kib("VmRSS")
    step, optimizers, _ = build_step(cfg, stage, micro, dtype)
    warm(optimizers)
    step()
    measured = (status_kib("VmHWM") - before) * 1024
    return {"predicted": predicted.peak_bytes - predicted.ema_bytes, "measured": measured}


def run_row(row: tuple) -> dict:
    name, preset, sets, stage, micro, amp = row
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    args = json.dumps([preset, sets, stage, micro, amp])
    out = subprocess.run([sys.executable, __file__, "--row", args], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=False)
    if out.returncode:
        raise SystemExit(f"row {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    gib = lambda b: f"{b / 2**30:.3f}"
    lines = ["| step (micro-batch, precision) | predicted GiB | measured GiB | measured / predicted |",
             "|---|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['name']} (micro-batch {r['micro']}, {'fp32' if r['amp'] == 'off' else r['amp']}) "
                     f"| {gib(r['predicted'])} | {gib(r['measured'])} | {r['measured'] / r['predicted']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the tiny rows only")
    ap.add_argument("--write", action="store_true", help="rewrite the section of benchmarks/RESULTS.md")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        print(json.dumps(measure(*json.loads(args.row))))
        return
    load_start = load_avg()
    results = []
    for row in ROWS[:QUICK] if args.quick else ROWS:
        r = run_row(row)
        results.append({"name": row[0], "micro": row[4], "amp": row[5], **r})
        print(f"{row[0]}: predicted {r['predicted'] / 2**30:.3f} GiB, measured {r['measured'] / 2**30:.3f} GiB",
              file=sys.stderr, flush=True)
    text = table(results)
    print(text)
    if args.write:
        note = (f"`python benchmarks/plan_check.py --write`: {cpu_model()}, one thread, torch "
                f"{__import__('torch').__version__}; the machine was shared (load average {load_start} at the start, "
                f"{load_avg()} at the end), which changes times, not memory. Predicted: `pvdm plan`'s peak of the "
                "step on fake tensors; measured: the rise of the peak resident set of a fresh process over the "
                "same step run for real (models, AdamW state, one forward, backward and optimizer step), glibc's "
                "mmap threshold pinned at 128 KiB. EMA copies left out of both.\n")
        replace_section(ROOT / "benchmarks" / "RESULTS.md", HEADING, f"{HEADING}\n\n{note}\n{text}\n")


if __name__ == "__main__":
    main()
