"""`pvdm plan`: micro-batch, gradient accumulation and checkpointing that fit a GPU, per stage."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import ConfigOpt, JsonOpt, PresetOpt, SetOpt, emit, guarded

GPU_MEMORY_DOC = "GPU memory in GiB (default 24: RTX 3090/4090, A10, L4; 40 or 80: A100; 80: H100)."
TFLOPS_DOC = ("Dense peak TFLOPS of one GPU at the training precision, for the step time (default: an A10's "
              "bf16 125; L4 121, RTX 4090 165, A100 312, H100 SXM 989).")


@app.command()
@guarded
def plan(preset: PresetOpt = "tiny", config: ConfigOpt = None, set_: SetOpt = None,
         gpu_memory: Annotated[Optional[float], typer.Option("--gpu-memory", help=GPU_MEMORY_DOC)] = None,
         gpus: Annotated[Optional[int], typer.Option("--gpus", help="Data-parallel GPUs sharing the global batch (default 1).")] = None,
         gpu_tflops: Annotated[Optional[float], typer.Option("--gpu-tflops", help=TFLOPS_DOC)] = None,
         utilization: Annotated[Optional[float], typer.Option("--utilization", help="Share of that peak a training step reaches (default 0.4).")] = None,
         headroom: Annotated[Optional[float], typer.Option("--headroom", help="Share of GPU memory kept for what is not a tensor: CUDA context, cuDNN/cuBLAS workspaces, fragmentation (default 0.15).")] = None,
         stage: Annotated[Optional[str], typer.Option("--stage", help="ae or diffusion (default: both).")] = None,
         as_json: JsonOpt = False) -> None:
    """Micro-batch, gradient accumulation and gradient checkpointing that fit each training stage's
    global batch in GPU memory, with the predicted peak memory and step time. The peak comes from
    one real training step (forward, backward, AdamW) run on fake tensors: nothing is allocated,
    and no GPU is needed. Takes seconds per setting tried (about 4 minutes for the 256^2 presets)."""
    from pvdm_core.base.config import load_config
    from pvdm_core.base.errors import BadInputError
    from pvdm_core.training.memory_plan import GPU, STAGES, plan_training

    if stage is not None and stage not in STAGES:
        raise BadInputError(f"--stage must be one of {', '.join(STAGES)}, got {stage!r}")
    cfg = load_config(preset, config, set_ or [])
    given = {"memory_gib": gpu_memory, "tflops": gpu_tflops, "utilization": utilization, "headroom": headroom,
             "count": gpus}
    result = plan_training(cfg, GPU(**{k: v for k, v in given.items() if v is not None}), (stage,) if stage else STAGES)
    if as_json:
        emit(result, True)
    else:
        print_plan(result)


def print_plan(result: dict) -> None:
    """The plan as a table on stdout, then the --set flags of each stage."""
    from rich.console import Console
    from rich.table import Table

    title = (f"{result['preset']} on {result['gpus']} x {result['gpu_memory_gib']:g} GiB (tensors up to "
             f"{result['budget_gib']:g} GiB), {result['precision']}; step time at {result['utilization']:.0%} "
             f"of {result['gpu_tflops']:g} TFLOPS")
    table = Table("stage", "global batch", "micro-batch x accumulation", "checkpointing", "peak GiB",
                  "TFLOP / step", "step s", "", title=title)
    for s in result["stages"]:
        chosen = s["setting"]
        if not s["options"]:
            table.add_row(s["stage"], str(s["global_batch"]), "does not fit", "", f">{s['needs_gib_at_micro_batch_1']}",
                          "", "", "")
        for o in s["options"]:
            table.add_row(f"{s['stage']} ({s['phase']})", str(s["global_batch"]),
                          f"{o['micro_batch']} x {o['grad_accum']}" + (f" x {result['gpus']} GPUs" if result["gpus"] > 1 else ""),
                          "on" if o["grad_checkpoint"] else "off", f"{o['peak_gib']:.3g}", f"{o['step_tflop']:.3g}",
                          f"{o['step_s']:.3g}", "chosen" if o == chosen else "")
    Console(width=160).print(table)
    for s in result["stages"]:
        if s["set"]:
            print(f"{s['stage']}: " + " ".join(f"--set {flag}" for flag in s["set"]))
