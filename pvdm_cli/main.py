"""`pvdm`: the command-line entry point. Each command parses, calls one core function, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pvdm_cli.options import (ConfigOpt, DeviceOpt, JsonOpt, OptPresetOpt, SeedOpt, SetOpt, emit, guarded)
from pvdm_core import __version__
from pvdm_core.config import load_config, preset_names
from pvdm_core.errors import BadInputError
from pvdm_core.progress import console, progress_bar

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
presets_app = typer.Typer(help="List presets, or show one resolved.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")


def _version(value: bool) -> None:
    if value:
        print(f"pvdm {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False) -> None:
    """PVDM: latent video diffusion in projected latent space."""


@presets_app.callback()
@guarded
def presets(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Table of presets: dataset, resolution, frames, model sizes."""
    if ctx.invoked_subcommand is not None:
        return
    rows = []
    for name in preset_names():
        cfg = load_config(name)
        rows.append({"name": name, "dataset": cfg.data.dataset, "resolution": cfg.data.resolution,
                     "frames": cfg.data.frames, "ae_dim": cfg.ae.dim, "ae_depth": cfg.ae.depth,
                     "patch": cfg.ae.patch_size, "unet_base": cfg.unet.base_channels,
                     "unet_mult": cfg.unet.channel_mult})
    if as_json:
        emit({"presets": rows}, True)
        return
    table = Table("preset", "dataset", "resolution", "frames", "AE (dim x depth, patch)", "UNet (base, mult)")
    for r in rows:
        table.add_row(r["name"], r["dataset"], f"{r['resolution']}²", str(r["frames"]),
                      f"{r['ae_dim']} x {r['ae_depth']}, p{r['patch']}", f"{r['unet_base']}, {r['unet_mult']}")
    console.print(table)
    emit({}, False, [r["name"] for r in rows])


@presets_app.command("show")
@guarded
def presets_show(name: Annotated[str, typer.Argument(help="Preset name.")],
                 config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print a preset's resolved config as YAML (with --config/--set applied)."""
    print(load_config(name, config, set_ or []).to_yaml(), end="")


@app.command()
@guarded
def info(preset: OptPresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
         device: DeviceOpt = None, as_json: JsonOpt = False) -> None:
    """Device chosen and why, versions, AMP dtype, weight locations; model sizes of a preset."""
    from pvdm_core.info import environment_info, model_sizes

    result = environment_info(device)
    if preset is not None or config is not None:
        cfg = load_config(preset or "tiny", config, set_ or [])
        result.update(preset=cfg.preset, **model_sizes(cfg))
    emit(result, as_json)


@app.command()
@guarded
def synth(out_dir: Annotated[Path, typer.Argument(help="Folder to write videos into.")],
          num: Annotated[int, typer.Option("--num", "-n", help="Number of videos.")] = 64,
          split: Annotated[str, typer.Option(help="train or test seeds (test never overlaps train).")] = "test",
          frames: Annotated[Optional[int], typer.Option(help="Frames per video (default: preset's).")] = None,
          fmt: Annotated[str, typer.Option("--format", help="mp4, gif, npz or frames.")] = "mp4",
          preset: OptPresetOpt = "tiny", config: ConfigOpt = None, set_: SetOpt = None,
          seed: SeedOpt = None, as_json: JsonOpt = False) -> None:
    """Write synthetic moving-shape videos (the embedded dataset) to disk, e.g. as a real/ folder."""
    from pvdm_core.data.datasets import SYNTHETIC_TEST_OFFSET
    from pvdm_core.data.synthetic import write_synthetic_videos

    cfg = load_config(preset, config, set_ or [])
    if split not in ("train", "test"):
        raise BadInputError(f"--split must be train or test, not {split!r}")
    if num < 1:
        raise BadInputError("--num must be at least 1")
    first = (cfg.data.synthetic_seed if seed is None else seed) + (SYNTHETIC_TEST_OFFSET if split == "test" else 0)
    with progress_bar() as bar:
        task = bar.add_task("synth", total=num, info="")
        paths = write_synthetic_videos(out_dir, num, frames or cfg.data.frames, cfg.data.resolution, first,
                                       fmt=fmt, on_video=lambda: bar.advance(task))
    emit({"videos": [str(p) for p in paths], "num": len(paths)}, as_json, [str(p) for p in paths])


def main() -> None:
    import pvdm_cli.commands  # noqa: F401 - registers the model commands on `app`
    import pvdm_cli.cmd_eval_fvd  # noqa: F401
    import pvdm_cli.cmd_convert  # noqa: F401
    import pvdm_cli.cmd_plot  # noqa: F401
    import pvdm_cli.cmd_demo  # noqa: F401

    app()


if __name__ == "__main__":
    main()
