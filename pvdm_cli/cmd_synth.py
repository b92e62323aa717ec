"""`pvdm synth DIR`: synthetic moving-shape videos (the embedded dataset) written to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import ConfigOpt, JsonOpt, OptPresetOpt, SeedOpt, SetOpt, emit, guarded
from pvdm_core.base.config import load_config
from pvdm_core.base.errors import BadInputError
from pvdm_core.base.progress import progress_bar


@app.command()
@guarded
def synth(out_dir: Annotated[Path, typer.Argument(help="Folder to write videos into.")],
          num: Annotated[int, typer.Option("--num", "-n", help="Number of videos.")] = 64,
          split: Annotated[str, typer.Option(help="train or test seeds (test never overlaps train).")] = "test",
          frames: Annotated[Optional[int], typer.Option(help="Frames per video (default: preset's).")] = None,
          fmt: Annotated[str, typer.Option("--format", help="mp4, gif, npz or frames.")] = "mp4",
          preset: OptPresetOpt = "tiny", config: ConfigOpt = None, set_: SetOpt = None,
          seed: SeedOpt = None, as_json: JsonOpt = False) -> None:
    """Write synthetic moving-shape videos (the embedded dataset) to disk, e.g. as a real/ folder.
    With --set data.class_labels=true each holds one shape, its class (the class-labelled set)."""
    from pvdm_core.data.datasets import synthetic_first_seed
    from pvdm_core.data.synthetic import write_synthetic_videos

    cfg = load_config(preset, config, set_ or [])
    first = synthetic_first_seed(cfg.data.synthetic_seed if seed is None else seed, split)
    if num < 1:
        raise BadInputError("--num must be at least 1")
    with progress_bar() as bar:
        task = bar.add_task("synth", total=num, info="")
        paths = write_synthetic_videos(out_dir, num, frames or cfg.data.frames, cfg.data.resolution, first,
                                       fmt=fmt, on_video=lambda: bar.advance(task),
                                       single_shape=cfg.data.class_labels)
    emit({"videos": [str(p) for p in paths], "num": len(paths)}, as_json, [str(p) for p in paths])
