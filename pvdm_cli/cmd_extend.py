"""`pvdm extend VIDEO`: continue a real video with a trained diffusion model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pvdm_cli.app import app
from pvdm_cli.options import (AmpOpt, ClassOpt, CompileOpt, CondGuidanceOpt, DeviceOpt, EmaOpt, EtaOpt, FormatOpt,
                              FpsOpt, GuidanceOpt, JsonOpt, ModelOpt, SampleSetOpt, SampleStepsOpt, SamplerOpt, emit, guarded,
                              model_precision)


@app.command()
@guarded
def extend(input_video: Annotated[Path, typer.Argument(help="Video file or frame folder to continue.")],
           output: Annotated[Path, typer.Option("-o", "--output", help="Output video (input + continuation).")],
           frames: Annotated[int, typer.Option("--frames", "-f", help="New frames to generate.")] = 16,
           model: ModelOpt = None, only_new: Annotated[bool, typer.Option("--only-new", help="Write only the generated frames.")] = False,
           sampler: SamplerOpt = None, steps: SampleStepsOpt = None, eta: EtaOpt = None,
           seed: Annotated[int, typer.Option("--seed")] = 0, fmt: FormatOpt = None, fps: FpsOpt = 8.0,
           ema: EmaOpt = True, class_: ClassOpt = None, guidance: GuidanceOpt = None,
           cond_guidance: CondGuidanceOpt = None, compile_: CompileOpt = False, set_: SampleSetOpt = None,
           device: DeviceOpt = None, amp: AmpOpt = None, as_json: JsonOpt = False) -> None:
    """Continue a real video: encode its last T frames and generate F new frames after them."""
    from pvdm_core.artifacts.load import load_diffusion
    from pvdm_core.base.device import choose_device
    from pvdm_core.base.progress import progress_bar
    from pvdm_core.generate.sample import class_report, clips_to_sample, extend_video, resolve_classes, sample_config

    choice = choose_device(device)
    loaded = load_diffusion(model, choice.device, ema)
    cfg = sample_config(loaded.cfg, sampler, steps, eta, set_, guidance, cond_guidance, compile_)
    choice, opts = model_precision(choice, cfg, amp), cfg.sample
    classes = resolve_classes(loaded, class_, opts, most=1)
    with progress_bar() as bar:
        task = bar.add_task("extend", total=clips_to_sample(1, frames, loaded.cfg.data.frames, 1), info="")
        path = extend_video(loaded, input_video, output, frames, seed, opts, choice, only_new, fmt, fps,
                            on_clip=lambda: bar.advance(task), label=classes[0] if classes else None)
    emit({"video": str(path), "new_frames": frames, "precision": choice.precision, "model": loaded.path,
          **class_report(loaded, classes, [0], opts)},
         as_json, [str(path)])
