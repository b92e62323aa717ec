"""`pvdm presets` (the table) and `pvdm presets show NAME` (one preset resolved, as YAML)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pvdm_cli.app import app
from pvdm_cli.options import ConfigOpt, JsonOpt, SetOpt, emit, guarded
from pvdm_core.base.config import load_config, preset_names
from pvdm_core.base.progress import console

presets_app = typer.Typer(help="List presets, or show one resolved.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")


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
