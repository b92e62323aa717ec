"""Options shared by the commands, defined once, and the result/error conventions; then the
options and set-up shared by the training commands and by the sampling commands."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from pvdm_core.base.config import override_config, resolve_config
from pvdm_core.base.errors import BadInputError, PvdmError
from pvdm_core.io.runs import dumps

if TYPE_CHECKING:  # torch stays unloaded until a command runs: `pvdm --help` is instant
    from pvdm_core.base.config import Config
    from pvdm_core.base.device import DeviceChoice

PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="Preset name (see `pvdm presets`).")]
OptPresetOpt = Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name (see `pvdm presets`).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML file merged over the preset.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override one key, e.g. --set ae_train.lr=2e-4 (repeatable).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (default: the config's run.seed).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]
OutDirOpt = Annotated[Optional[Path], typer.Option("--out", help="Run folder (default runs/<preset>-<command>-<time>).")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Fail on unreadable videos instead of skipping them.")]
AmpOpt = Annotated[Optional[str], typer.Option("--amp", help="Autocast precision: auto (bf16 on GPUs with bf16 units, fp16 on older CUDA GPUs, fp32 on CPU and MPS), off (fp32), bf16 or fp16. Default: the model's run.amp.")]


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


def model_precision(choice: DeviceChoice, cfg: Config, amp: Optional[str]) -> DeviceChoice:
    """The device with the precision of --amp, else of the model's run.amp (checked like --set)."""
    from pvdm_core.base.device import with_amp

    return with_amp(choice, override_config(cfg, [f"run.amp={amp}"] if amp else [], ("run.amp",)).run.amp)


def emit(result: dict[str, Any], as_json: bool, lines: list[str] | None = None) -> None:
    """The machine-readable result on stdout: JSON with --json, else one path/value per line."""
    if as_json:
        print(dumps(result))
    else:
        for line in lines if lines is not None else [f"{k}: {v}" for k, v in result.items()]:
            print(line)


# ---------------------------------------------------------------------------------------------
# The training commands (train-ae, train-diffusion)
# ---------------------------------------------------------------------------------------------

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Dataset root (folder of videos, SkyTimelapse or UCF-101 layout).")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Optimizer steps (default: the preset's).")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Global batch size (default: the preset's).")]
MaxTimeOpt = Annotated[Optional[float], typer.Option("--max-time", help="Stop cleanly (with a checkpoint) after this many minutes.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out (re-running the same command on the same --out does too).")]


def training_setup(preset: str, config: Optional[Path], set_: Optional[list[str]], seed: Optional[int],
                   data: Optional[Path], section: str, steps: Optional[int], batch_size: Optional[int],
                   device: Optional[str]) -> tuple[Config, DeviceChoice]:
    """The resolved config (preset < --config < --set < --seed, --steps, --batch-size of
    `section`), the device, and the process group under torchrun."""
    from pvdm_core.base import distributed as dist
    from pvdm_core.base.device import choose_device

    sets = (set_ or []) + ([f"run.seed={seed}"] if seed is not None else [])
    cfg = resolve_config(preset, config, sets, data=data, section=section, steps=steps, batch_size=batch_size)
    choice = choose_device(device, cfg.run.amp)
    dist.setup(choice.device)
    return cfg, choice


def training_run_dir(out: Optional[Path], resume: bool, cfg: Config, command: str) -> Path:
    """--out (or a new runs/<preset>-<command>-<time>), holding the resolved config.yaml."""
    from pvdm_core.base import distributed as dist
    from pvdm_core.io.runs import prepare_run_dir

    if resume and (out is None or not (out / "latest").is_file()):
        raise BadInputError("--resume needs --out pointing at a run folder with a checkpoint")
    if out is None and dist.world_size() > 1:
        raise BadInputError("under torchrun, pass --out: every process must use the same run folder")
    return prepare_run_dir(out, cfg, command) if dist.is_main() else out


def seconds(minutes: Optional[float]) -> Optional[float]:
    return minutes * 60 if minutes else None


# ---------------------------------------------------------------------------------------------
# The sampling commands (sample, extend)
# ---------------------------------------------------------------------------------------------

ModelOpt = Annotated[Optional[Path], typer.Option("--model", "-m", help="Diffusion run folder or checkpoint (default: newest under ./runs).")]
SamplerOpt = Annotated[Optional[str], typer.Option("--sampler", help="ddim, ddpm or dpm (default: the model config's).")]
SampleStepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Sampling steps (ddpm always uses all).")]
EtaOpt = Annotated[Optional[float], typer.Option("--eta", help="DDIM noise (1 = reference, 0 = deterministic).")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help="mp4, gif, npz or frames (default: from -o's extension).")]
EmaOpt = Annotated[bool, typer.Option("--ema/--no-ema", help="Use the EMA weights (default) or the raw ones.")]
SampleSetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a sampling key or run.amp, e.g. --set sample.noise=release (repeatable).")]
FpsOpt = Annotated[float, typer.Option("--fps", help="Frame rate of written videos.")]
ClassOpt = Annotated[Optional[list[str]], typer.Option("--class", metavar="NAME", help="Class name or index (class-conditional models); repeat it or give a,b,c to cycle over the videos.")]
GuidanceOpt = Annotated[Optional[float], typer.Option("--guidance", help="Classifier-free guidance weight w on --class: (1 + w) eps(class) - w eps(null); 0 = off.")]
CompileOpt = Annotated[bool, typer.Option("--compile", help="torch.compile the UNet first: minutes of compiling, then faster steps (long jobs).")]
CondGuidanceOpt = Annotated[Optional[float], typer.Option("--cond-guidance", help="Guidance weight w on the previous clip (clip 2 on): (1 + w) eps(prev) - w eps(0), the release's w; 0 = off.")]
