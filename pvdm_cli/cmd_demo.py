"""`pvdm demo`: the whole method in one command, within a time budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import DeviceOpt, JsonOpt, SetOpt, emit, guarded


@app.command()
@guarded
def demo(
    out: Annotated[Path, typer.Option("--out", help="Demo folder: run folders, videos, summary.json, contact_sheet.png. Re-running on it resumes.")] = Path("runs/demo"),
    minutes: Annotated[float, typer.Option("--minutes", help="Time budget of the whole demo, evaluation included (summed over resumed runs).")] = 30.0,
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset of the models (see `pvdm presets`); its step counts are the caps.")] = "demo",
    num_eval: Annotated[int, typer.Option("--num-eval", help="Videos per FVD side: held-out real, generated, reconstructed, untrained (64: the quality benchmark's protocol, about 3 more minutes on 2 CPU cores).")] = 32,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed (video i uses seed + i).")] = 0,
    procs: Annotated[Optional[int], typer.Option("--procs", help="Training processes on a CPU, one core and the preset's batch each (the global batch grows with them). Default: 2 where there are 2 cores or more, 1 on a GPU.")] = None,
    set_: SetOpt = None, device: DeviceOpt = None, as_json: JsonOpt = False,
) -> None:
    """Train the autoencoder and the diffusion model on the embedded synthetic dataset, sample, extend a
    held-out video and score FVD against held-out clips, the reconstruction floor and an untrained model.

    The budget is split after timing a few steps of each model on this machine; on a GPU the
    preset's step caps are reached sooner and the demo finishes early. Progress goes to stderr;
    the paths of summary.json, contact_sheet.png and the videos (or, with --json, the summary) to stdout.
    """
    from pvdm_core.base.device import choose_device
    from pvdm_core.tools.demo.run import DemoOptions, run_demo

    choice = choose_device(device)
    summary = run_demo(DemoOptions(out, choice, minutes, preset, set_ or [], num_eval, seed, procs))
    paths = summary["paths"]
    emit(summary, as_json, [paths["summary"], paths["contact_sheet"], paths["generated"], paths["long"], paths["extended"]])
