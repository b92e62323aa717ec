"""`pvdm plot RUN [RUN ...]`: loss, held-out PSNR/SSIM and FVD curves of runs, overlaid, as one image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pvdm_cli.app import app
from pvdm_cli.options import JsonOpt, emit, guarded


@app.command()
@guarded
def plot(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (or their metrics.jsonl files), overlaid in one colour each.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Image to write: .png, .pdf or .svg.")] = Path("curves.png"),
    as_json: JsonOpt = False,
) -> None:
    r"""Plot training curves from metrics.jsonl: loss, held-out PSNR/SSIM, FVD; the AE's GAN phase marked.

    Works on a run still being written. Needs matplotlib: pip install 'pvdm\[plot]'.

    Example: pvdm plot runs/ae runs/ae-lr2e-3 -o curves.png
    """
    # (the docstring's \[ keeps Typer's rich markup from eating "[plot]")
    from pvdm_core.io.plot import plot_runs

    result = plot_runs(runs, output)
    emit(result, as_json, [result["plot"]])
