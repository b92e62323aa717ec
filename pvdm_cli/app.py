"""The `pvdm` Typer app and its root options. Commands register on it from their cmd_*.py
modules, which pvdm_cli/commands.py imports; import `app` from pvdm_cli.main to get them all."""

from __future__ import annotations

from typing import Annotated

import typer

from pvdm_core import __version__

EPILOG = """Examples:\n
  pvdm train-ae --preset tiny --out runs/ae\n
  pvdm encode --ae runs/ae data/ -o latents/\n
  pvdm train-diffusion --preset tiny --ae runs/ae --out runs/dm\n
  pvdm sample --model runs/dm --frames 128 -o out.mp4\n
  pvdm eval-fvd real/ fake/ --json
"""

app = typer.Typer(
    name="pvdm", help="PVDM: latent video diffusion in projected latent space (train, sample, evaluate).",
    epilog=EPILOG, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"pvdm {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False) -> None:
    """PVDM: latent video diffusion in projected latent space."""
