"""`pvdm train-ae`: train the projected autoencoder (stage 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import (BatchOpt, ConfigOpt, DataOpt, DeviceOpt, JsonOpt, MaxTimeOpt, OutDirOpt, PresetOpt,
                              ResumeOpt, SeedOpt, SetOpt, StepsOpt, StrictOpt, emit, guarded, seconds,
                              training_run_dir, training_setup)

VggOpt = Annotated[Optional[Path], typer.Option(help="VGG16 ImageNet weights (vgg16-397923af.pth) for the LPIPS loss.")]


@app.command("train-ae")
@guarded
def train_ae(preset: PresetOpt = "tiny", data: DataOpt = None, out: OutDirOpt = None, steps: StepsOpt = None,
             batch_size: BatchOpt = None, resume: ResumeOpt = False, max_time: MaxTimeOpt = None,
             vgg_weights: VggOpt = None, config: ConfigOpt = None, set_: SetOpt = None, device: DeviceOpt = None,
             seed: SeedOpt = None, strict: StrictOpt = False, as_json: JsonOpt = False) -> None:
    """Train the projected autoencoder (stage 1). Prints the final checkpoint path."""
    from pvdm_core.base import distributed as dist
    from pvdm_core.training.train_ae import AETrainOptions, train_autoencoder

    cfg, choice = training_setup(preset, config, set_, seed, data, "ae_train", steps, batch_size, device)
    run_dir = training_run_dir(out, resume, cfg, "train-ae")
    result = train_autoencoder(cfg, AETrainOptions(run_dir, choice, seconds(max_time),
                                                   str(vgg_weights) if vgg_weights else None, strict))
    if dist.is_main():
        emit(result, as_json, [result["checkpoint"]])
