"""Training throughput of the `demo` preset's models on a CPU, in clips a second: one process with
1 and 2 torch threads against `--procs` processes of one thread each, as `pvdm demo --procs` runs
them (`distributed.run_on_local_ranks`, gloo; each step all-reduces a gradient-sized buffer, as DDP
does). Every process trains at the preset's batch (8). Run it on an idle machine:

    python benchmarks/ranks.py [--steps 40] [--procs 2]

prints a table (RESULTS.md, "Demo": two processes or two threads on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import torch

from pvdm_core.base import distributed as dist
from pvdm_core.base.config import load_config
from pvdm_core.training.step_cost import build_step, warm

STAGES = {"ae": "autoencoder", "diffusion": "UNet"}


def step_seconds(stage: str, steps: int, batch: int) -> float:
    """Mean seconds of `steps` training steps after 5 warm-up steps; under several processes each
    step also all-reduces a buffer the size of the gradients."""
    cfg = load_config("demo")
    step, optimizers, _ = build_step(cfg, stage, batch, None)
    warm(optimizers)
    grads = torch.zeros(sum(p.numel() for opt in optimizers for g in opt.param_groups for p in g["params"]))
    for i in range(steps + 5):
        if i == 5:
            dist.barrier()
            t0 = time.perf_counter()
        step()
        dist.all_reduce_sum(grads)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    batch = load_config("demo").diffusion_train.batch_size
    print("| model | setting | s a step | clips/s | vs 1 thread |\n|---|---|---|---|---|")
    for stage, name in STAGES.items():
        rows = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            rows.append((f"1 process, {threads} thread{'s' if threads > 1 else ''}", step_seconds(stage, args.steps, batch), 1))
        seconds = dist.run_on_local_ranks(step_seconds, (stage, args.steps, batch), args.procs)
        rows.append((f"{args.procs} processes, 1 thread each (all-reduce a step)", seconds, args.procs))
        base = batch / rows[0][1]
        for setting, seconds, procs in rows:
            clips = procs * batch / seconds
            print(f"| {name} | {setting} | {seconds:.3f} | {clips:.1f} | {clips / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
