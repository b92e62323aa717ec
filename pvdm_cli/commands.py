"""The pipeline commands: train-ae, encode, train-diffusion, sample, extend, eval-fvd.

Each parses its options, resolves the config, calls one core function and prints the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.main import app
from pvdm_cli.options import (ConfigOpt, DeviceOpt, JsonOpt, OutDirOpt, PresetOpt, SeedOpt, SetOpt, StrictOpt, emit,
                              guarded)
from pvdm_core import distributed as dist
from pvdm_core.config import resolve_config
from pvdm_core.device import choose_device
from pvdm_core.errors import BadInputError
from pvdm_core.runs import prepare_run_dir

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Dataset root (folder of videos, SkyTimelapse or UCF-101 layout).")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Optimizer steps (default: the preset's).")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Global batch size (default: the preset's).")]
MaxTimeOpt = Annotated[Optional[float], typer.Option("--max-time", help="Stop cleanly (with a checkpoint) after this many minutes.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out (re-running the same command on the same --out does too).")]


def _run_dir(out: Optional[Path], resume: bool, cfg, command: str) -> Path:
    if resume and (out is None or not (out / "latest").is_file()):
        raise BadInputError("--resume needs --out pointing at a run folder with a checkpoint")
    if out is None and dist.world_size() > 1:
        raise BadInputError("under torchrun, pass --out: every process must use the same run folder")
    return prepare_run_dir(out, cfg, command) if dist.is_main() else out


@app.command("train-ae")
@guarded
def train_ae(preset: PresetOpt = "tiny", data: DataOpt = None, out: OutDirOpt = None, steps: StepsOpt = None,
             batch_size: BatchOpt = None, resume: ResumeOpt = False, max_time: MaxTimeOpt = None,
             vgg_weights: Annotated[Optional[Path], typer.Option(help="VGG16 ImageNet weights (vgg16-397923af.pth) for the LPIPS loss.")] = None,
             config: ConfigOpt = None, set_: SetOpt = None, device: DeviceOpt = None, seed: SeedOpt = None,
             strict: StrictOpt = False, as_json: JsonOpt = False) -> None:
    """Train the projected autoencoder (stage 1). Prints the final checkpoint path."""
    from pvdm_core.train_ae import AETrainOptions, train_autoencoder

    cfg = resolve_config(preset, config, (set_ or []) + ([f"run.seed={seed}"] if seed is not None else []),
                         data=data, section="ae_train", steps=steps, batch_size=batch_size)
    choice = choose_device(device, cfg.run.amp)
    dist.setup(choice.device)
    run_dir = _run_dir(out, resume, cfg, "train-ae")
    result = train_autoencoder(cfg, AETrainOptions(run_dir, choice, max_time * 60 if max_time else None,
                                                   str(vgg_weights) if vgg_weights else None, strict))
    if dist.is_main():
        emit(result, as_json, [result["checkpoint"]])


@app.command()
@guarded
def encode(inputs: Annotated[list[str], typer.Argument(help="Video files, frame folders, dataset roots, or - to read paths from stdin.")],
           ae: Annotated[Path, typer.Option("--ae", help="Autoencoder run folder or checkpoint.")],
           output: Annotated[Path, typer.Option("-o", "--output", help="OUT.npz, or a folder for sharded latents.")],
           clips: Annotated[str, typer.Option(help="Clips per video: first, all or N.")] = "all",
           stride: Annotated[Optional[int], typer.Option(help="Frames between clip starts (default T: consecutive clips).")] = None,
           batch_size: Annotated[int, typer.Option("--batch-size", help="Clips per forward pass.")] = 16,
           dtype: Annotated[str, typer.Option(help="float16 or float32.")] = "float16",
           reconstruct: Annotated[Optional[Path], typer.Option(help="Also write decoded videos here (a quick look at what the AE keeps).")] = None,
           device: DeviceOpt = None, strict: StrictOpt = False, as_json: JsonOpt = False) -> None:
    """Encode videos into the three latent planes (cached input for train-diffusion)."""
    import sys

    from pvdm_core.artifacts import load_autoencoder
    from pvdm_core.encode import encode_videos, expand_inputs
    from pvdm_core.progress import progress_bar

    choice = choose_device(device)
    model = load_autoencoder(ae, choice.device)
    videos = expand_inputs(inputs, lambda: [line.strip() for line in sys.stdin if line.strip()])
    prefix = "latents-"
    if dist.world_size() > 1:  # each process encodes every world-th video into its own shards
        if output.suffix == ".npz":
            raise BadInputError("under torchrun, -o must be a folder (each process writes its own shards)")
        videos, prefix = videos[dist.rank() :: dist.world_size()], f"latents-r{dist.rank():03d}-"
    with progress_bar(disable=not dist.is_main()) as bar:
        task = bar.add_task("encode", total=None, info=f"{len(videos)} videos")
        result = encode_videos(model, videos, output, choice, clips, stride, batch_size, dtype, reconstruct, strict,
                               on_clip=lambda: bar.advance(task), shard_prefix=prefix)
    emit(result, as_json, result["files"])


@app.command("train-diffusion")
@guarded
def train_diffusion(ae: Annotated[Path, typer.Option("--ae", help="Autoencoder run folder or checkpoint (from train-ae).")],
                    preset: PresetOpt = "tiny",
                    latents: Annotated[Optional[Path], typer.Option("--latents", help="Latents from `pvdm encode` (fast path).")] = None,
                    data: DataOpt = None, out: OutDirOpt = None, steps: StepsOpt = None, batch_size: BatchOpt = None,
                    resume: ResumeOpt = False, max_time: MaxTimeOpt = None, config: ConfigOpt = None,
                    set_: SetOpt = None, device: DeviceOpt = None, seed: SeedOpt = None, strict: StrictOpt = False,
                    as_json: JsonOpt = False) -> None:
    """Train the latent diffusion UNet (stage 2), jointly unconditional and conditioned on the previous clip."""
    from pvdm_core.artifacts import load_autoencoder
    from pvdm_core.train_diffusion import DiffusionTrainOptions, adopt_autoencoder, train_diffusion as run

    cfg = resolve_config(preset, config, (set_ or []) + ([f"run.seed={seed}"] if seed is not None else []),
                         data=data, section="diffusion_train", steps=steps, batch_size=batch_size)
    choice = choose_device(device, cfg.run.amp)
    dist.setup(choice.device)
    loaded = load_autoencoder(ae, choice.device)
    cfg = adopt_autoencoder(cfg, loaded, data is not None)
    run_dir = _run_dir(out, resume, cfg, "train-diffusion")
    result = run(cfg, DiffusionTrainOptions(run_dir, choice, loaded, latents, max_time * 60 if max_time else None, strict))
    if dist.is_main():
        emit(result, as_json, [result["checkpoint"]])


ModelOpt = Annotated[Optional[Path], typer.Option("--model", "-m", help="Diffusion run folder or checkpoint (default: newest under ./runs).")]
SamplerOpt = Annotated[Optional[str], typer.Option("--sampler", help="ddim, ddpm or dpm (default: the model config's).")]
SampleStepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Sampling steps (ddpm always uses all).")]
EtaOpt = Annotated[Optional[float], typer.Option("--eta", help="DDIM noise (1 = reference, 0 = deterministic).")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", help="mp4, gif, npz or frames (default: from -o's extension).")]
EmaOpt = Annotated[bool, typer.Option("--ema/--no-ema", help="Use the EMA weights (default) or the raw ones.")]
SampleSetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a sampling key, e.g. --set sample.noise=release (repeatable).")]
FpsOpt = Annotated[float, typer.Option("--fps", help="Frame rate of written videos.")] 


def _sampler_options(cfg, sampler, steps, eta, sets):
    import dataclasses

    from pvdm_core.config import override_config

    sample_cfg = override_config(cfg, sets or [], ("sample",)).sample
    return dataclasses.replace(sample_cfg, sampler=sampler or sample_cfg.sampler, steps=steps or sample_cfg.steps,
                               eta=sample_cfg.eta if eta is None else eta)


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
           set_: SampleSetOpt = None, device: DeviceOpt = None, as_json: JsonOpt = False) -> None:
    """Generate videos of any length from a trained diffusion model."""
    import math

    from pvdm_core.progress import progress_bar
    from pvdm_core.artifacts import load_diffusion
    from pvdm_core.sample import sample_videos

    choice = choose_device(device)
    loaded = load_diffusion(model, choice.device, ema, ae)
    frames = frames or loaded.cfg.data.frames
    opts = _sampler_options(loaded.cfg, sampler, steps, eta, set_)
    indices = list(range(num))[dist.rank() :: dist.world_size()]
    with progress_bar() as bar:
        task = bar.add_task("sample", total=len(indices) and math.ceil(len(indices) / batch_size) * math.ceil(frames / loaded.cfg.data.frames),
                            info=f"{opts.sampler} {opts.steps if opts.sampler != 'ddpm' else 1000} steps")
        paths = sample_videos(loaded, output, num, frames, seed, opts, choice, batch_size, fmt, fps, indices,
                              on_clip=lambda: bar.advance(task))
    emit({"videos": [str(p) for p in paths], "frames": frames, "sampler": opts.sampler, "steps": opts.steps,
          "eta": opts.eta, "seed": seed, "model": loaded.path}, as_json, [str(p) for p in paths])


@app.command()
@guarded
def extend(input_video: Annotated[Path, typer.Argument(help="Video file or frame folder to continue.")],
           output: Annotated[Path, typer.Option("-o", "--output", help="Output video (input + continuation).")],
           frames: Annotated[int, typer.Option("--frames", "-f", help="New frames to generate.")] = 16,
           model: ModelOpt = None, only_new: Annotated[bool, typer.Option("--only-new", help="Write only the generated frames.")] = False,
           sampler: SamplerOpt = None, steps: SampleStepsOpt = None, eta: EtaOpt = None,
           seed: Annotated[int, typer.Option("--seed")] = 0, fmt: FormatOpt = None, fps: FpsOpt = 8.0,
           ema: EmaOpt = True, set_: SampleSetOpt = None, device: DeviceOpt = None, as_json: JsonOpt = False) -> None:
    """Continue a real video: encode its last T frames and generate F new frames after them."""
    import math

    from pvdm_core.progress import progress_bar
    from pvdm_core.artifacts import load_diffusion
    from pvdm_core.sample import extend_video

    choice = choose_device(device)
    loaded = load_diffusion(model, choice.device, ema)
    opts = _sampler_options(loaded.cfg, sampler, steps, eta, set_)
    with progress_bar() as bar:
        task = bar.add_task("extend", total=math.ceil(frames / loaded.cfg.data.frames), info="")
        path = extend_video(loaded, input_video, output, frames, seed, opts, choice, only_new, fmt, fps,
                            on_clip=lambda: bar.advance(task))
    emit({"video": str(path), "new_frames": frames, "model": loaded.path}, as_json, [str(path)])
