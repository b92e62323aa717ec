"""`pvdm convert FILE -o OUT`: the public release's checkpoints -> a pvdm run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import JsonOpt, OptPresetOpt, SetOpt, emit, guarded
from pvdm_core.base.progress import log


@app.command()
@guarded
def convert(
    file: Annotated[Path, typer.Argument(help="A release checkpoint: model_last.pth (autoencoder), ema_model_*.pth or model_*.pth (diffusion).", show_default=False)],
    out: Annotated[Path, typer.Option("-o", "--out", help="Run folder to write (config.yaml, release.pt, latest).")],
    kind: Annotated[str, typer.Option(help="auto (from the file's keys), autoencoder or diffusion: refuse any other kind.")] = "auto",
    preset: OptPresetOpt = None, set_: SetOpt = None,
    ae: Annotated[Optional[Path], typer.Option("--ae", help="Diffusion files: the converted autoencoder run it belongs to.")] = None,
    raw: Annotated[Optional[Path], typer.Option("--raw", help="Diffusion files: the raw model_*.pth beside an ema_model_*.pth.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a checkpoint of the authors' release (github sihyun-yu/PVDM) into a pvdm run that
    `encode`, `sample`, `extend` and the other commands take like a trained one."""
    from pvdm_core.artifacts.convert import convert_release
    from pvdm_core.base.errors import BadInputError

    if kind not in ("auto", "autoencoder", "diffusion"):
        raise BadInputError(f"--kind must be auto, autoencoder or diffusion, not {kind!r}")
    result = convert_release(file, out, kind, preset, set_ or [], ae, raw)  # type: ignore[arg-type]
    also = f" (shapes also fit {', '.join(result['also_fits'])}: pass --preset to choose)" if result["also_fits"] else ""
    log(f"converted {file} ({result['kind']}) with preset {result['preset']}{also}")
    emit(result, as_json, [result["checkpoint"]])
