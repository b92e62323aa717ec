"""`pvdm train-diffusion`: train the latent diffusion UNet (stage 2) on a trained autoencoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import (BatchOpt, ConfigOpt, DataOpt, DeviceOpt, JsonOpt, MaxTimeOpt, OutDirOpt, PresetOpt,
                              ResumeOpt, SeedOpt, SetOpt, StepsOpt, StrictOpt, emit, guarded, seconds,
                              training_run_dir, training_setup)

AEOpt = Annotated[Path, typer.Option("--ae", help="Autoencoder run folder or checkpoint (from train-ae).")]
LatentsOpt = Annotated[Optional[Path], typer.Option("--latents", help="Latents from `pvdm encode` (fast path).")]


@app.command("train-diffusion")
@guarded
def train_diffusion(ae: AEOpt, preset: PresetOpt = "tiny", latents: LatentsOpt = None, data: DataOpt = None,
                    out: OutDirOpt = None, steps: StepsOpt = None, batch_size: BatchOpt = None,
                    resume: ResumeOpt = False, max_time: MaxTimeOpt = None, config: ConfigOpt = None,
                    set_: SetOpt = None, device: DeviceOpt = None, seed: SeedOpt = None, strict: StrictOpt = False,
                    as_json: JsonOpt = False) -> None:
    """Train the latent diffusion UNet (stage 2), jointly unconditional and conditioned on the previous clip."""
    from pvdm_core.artifacts.load import load_autoencoder
    from pvdm_core.base import distributed as dist
    from pvdm_core.base.config import given_keys
    from pvdm_core.training.train_diffusion import DiffusionTrainOptions, adopt_autoencoder, train_diffusion as run

    cfg, choice = training_setup(preset, config, set_, seed, data, "diffusion_train", steps, batch_size, device)
    loaded = load_autoencoder(ae, choice.device)
    cfg = adopt_autoencoder(cfg, loaded, given_keys(config, set_ or [], data))
    run_dir = training_run_dir(out, resume, cfg, "train-diffusion")
    result = run(cfg, DiffusionTrainOptions(run_dir, choice, loaded, latents, seconds(max_time), strict))
    if dist.is_main():
        emit(result, as_json, [result["checkpoint"]])
