"""Options shared by every command, defined once, and the result/error conventions."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pvdm_core.errors import PvdmError
from pvdm_core.runs import dumps

PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="Preset name (see `pvdm presets`).")]
OptPresetOpt = Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name (see `pvdm presets`).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML file merged over the preset.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override one key, e.g. --set ae_train.lr=2e-4 (repeatable).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (default: the config's run.seed).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]
OutDirOpt = Annotated[Optional[Path], typer.Option("--out", help="Run folder (default runs/<preset>-<command>-<time>).")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Fail on unreadable videos instead of skipping them.")]


def fail(message: str, code: int) -> None:
    print(f"pvdm: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def guarded(fn):
    """Run a command: PvdmError -> one message and its exit code, no traceback (PVDM_DEBUG=1 shows it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = os.environ.get("PVDM_DEBUG") == "1"
        try:
            return fn(*args, **kwargs)
        except PvdmError as e:
            if debug:
                traceback.print_exc()
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - the last line of defence of the CLI
            if debug:
                raise
            fail(f"{type(e).__name__}: {e} (set PVDM_DEBUG=1 for the traceback)", 1)

    return wrapper


def emit(result: dict[str, Any], as_json: bool, lines: list[str] | None = None) -> None:
    """The machine-readable result on stdout: JSON with --json, else one path/value per line."""
    if as_json:
        print(dumps(result))
    else:
        for line in lines if lines is not None else [f"{k}: {v}" for k, v in result.items()]:
            print(line)
