"""`pvdm sample`: videos of any length from a trained diffusion model, clip by clip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import (AmpOpt, ClassOpt, CompileOpt, CondGuidanceOpt, DeviceOpt, EmaOpt, EtaOpt, FormatOpt,
                              FpsOpt, GuidanceOpt, JsonOpt, ModelOpt, SampleSetOpt, SampleStepsOpt, SamplerOpt, emit, guarded,
                              model_precision)


@app.command()
@guarded
def sample(output: Annotated[Path, typer.Option("-o", "--output", help="out.mp4, or a folder for one file per video.")],
           model: ModelOpt = None, num: Annotated[int, typer.Option("--num", "-n", help="Number of videos.")] = 1,
           frames: Annotated[Optional[int], typer.Option("--frames", "-f", help="Frames per video (default one clip, T); more are generated clip by clip.")] = None,
           sampler: SamplerOpt = None, steps: SampleStepsOpt = None, eta: EtaOpt = None,
           seed: Annotated[int, typer.Option("--seed", help="Video i uses seed + i.")] = 0,
           batch_size: Annotated[int, typer.Option("--batch-size", help="Videos sampled together.")] = 8,
           fmt: FormatOpt = None, fps: FpsOpt = 8.0, ema: EmaOpt = True,
           ae: Annotated[Optional[Path], typer.Option("--ae", help="Override the autoencoder recorded in the model.")] = None,
           class_: ClassOpt = None, guidance: GuidanceOpt = None, cond_guidance: CondGuidanceOpt = None,
           compile_: CompileOpt = False, set_: SampleSetOpt = None, device: DeviceOpt = None, amp: AmpOpt = None,
           as_json: JsonOpt = False) -> None:
    """Generate videos of any length from a trained diffusion model (of given classes, with guidance)."""
    from pvdm_core.artifacts.load import load_diffusion
    from pvdm_core.base import distributed as dist
    from pvdm_core.base.device import choose_device
    from pvdm_core.base.progress import progress_bar
    from pvdm_core.generate.sample import class_report, clips_to_sample, resolve_classes, sample_config, sample_videos

    choice = choose_device(device)
    loaded = load_diffusion(model, choice.device, ema, ae)
    frames = frames or loaded.cfg.data.frames
    cfg = sample_config(loaded.cfg, sampler, steps, eta, set_, guidance, cond_guidance, compile_)
    choice, opts = model_precision(choice, cfg, amp), cfg.sample
    classes = resolve_classes(loaded, class_, opts)
    indices = list(range(num))[dist.rank() :: dist.world_size()]
    clips = clips_to_sample(len(indices), frames, loaded.cfg.data.frames, batch_size)
    with progress_bar() as bar:
        task = bar.add_task("sample", total=clips, info=f"{opts.sampler} {opts.steps if opts.sampler != 'ddpm' else 1000} steps")
        paths = sample_videos(loaded, output, num, frames, seed, opts, choice, batch_size, fmt, fps, indices,
                              on_clip=lambda: bar.advance(task), classes=classes)
    emit({"videos": [str(p) for p in paths], "frames": frames, "sampler": opts.sampler, "steps": opts.steps,
          "eta": opts.eta, "seed": seed, "compile": opts.compile, "precision": choice.precision, "model": loaded.path,
          **class_report(loaded, classes, indices, opts)},
         as_json, [str(p) for p in paths])
