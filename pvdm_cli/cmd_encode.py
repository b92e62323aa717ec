"""`pvdm encode`: videos -> the three latent planes (cached input for train-diffusion)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import AmpOpt, DeviceOpt, JsonOpt, StrictOpt, emit, guarded, model_precision
from pvdm_core.base.errors import BadInputError


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
           class_labels: Annotated[bool, typer.Option("--class-labels", help="Store each clip's class (its folder; the shape of `pvdm synth --set data.class_labels=true` videos) for class-conditional training.")] = False,
           workers: Annotated[Optional[int], typer.Option("--workers", help="Processes decoding videos while the device encodes (default: the autoencoder's data.num_workers).")] = None,
           device: DeviceOpt = None, amp: AmpOpt = None, strict: StrictOpt = False, as_json: JsonOpt = False) -> None:
    """Encode videos into the three latent planes (cached input for train-diffusion)."""
    from pvdm_core.artifacts.load import load_autoencoder
    from pvdm_core.base import distributed as dist
    from pvdm_core.base.device import choose_device
    from pvdm_core.base.progress import progress_bar
    from pvdm_core.data.labels import label_indices
    from pvdm_core.training.encode import encode_videos, expand_inputs

    choice = choose_device(device)
    model = load_autoencoder(ae, choice.device)
    choice = model_precision(choice, model.cfg, amp)
    videos = expand_inputs(inputs, lambda: [line.strip() for line in sys.stdin if line.strip()])
    # the index map of all inputs, before they are shared out: every process's shards agree
    class_names = label_indices([str(v) for v in videos])[1] if class_labels else None
    prefix = "latents-"
    if dist.world_size() > 1:  # each process encodes every world-th video into its own shards
        if output.suffix == ".npz":
            raise BadInputError("under torchrun, -o must be a folder (each process writes its own shards)")
        videos, prefix = videos[dist.rank() :: dist.world_size()], f"latents-r{dist.rank():03d}-"
    with progress_bar(disable=not dist.is_main()) as bar:
        task = bar.add_task("encode", total=None, info=f"{len(videos)} videos")
        result = encode_videos(model, videos, output, choice, clips, stride, batch_size, dtype, reconstruct, strict,
                               on_clip=lambda: bar.advance(task), shard_prefix=prefix, class_names=class_names,
                               workers=model.cfg.data.num_workers if workers is None else workers)
    emit({**result, "precision": choice.precision}, as_json, result["files"])
