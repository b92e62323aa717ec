"""eval-fvd's options, their checks, and which frames of a video form its clip."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from pvdm_core.base.errors import BadInputError
from pvdm_core.evaluation.fvd.protocol import RESIZE_MODES, Resize
from pvdm_core.evaluation.metrics.i3d_weights import DETECTORS
from pvdm_core.models.i3d import MIN_FRAMES

ClipMode = Literal["first", "random"]
CLIP_MODES: tuple[str, ...] = get_args(ClipMode)
# REAL's videos of a UCF-101 or SkyTimelapse root: a split, both, or the dataset's FVD convention
# (`sources.CONVENTION_SPLIT`: UCF-101 all, SkyTimelapse train); any other folder is taken whole.
RealSplit = Literal["all", "train", "test", "convention"]
REAL_SPLITS: tuple[str, ...] = get_args(RealSplit)
# How --runs draws its fake sets: disjoint blocks of FAKE's videos (StyleGAN-V draws new samples
# each run), or the same videos with clip windows drawn from seed + run (needs --fake-clip random).
RunSets = Literal["subsets", "seeds"]
RUN_SETS: tuple[str, ...] = get_args(RunSets)


@dataclass(frozen=True)
class FVDOptions:
    num_videos: int = 2048  # clips per side (one per video): the first N usable videos, or all
    frames: int = 16  # frames per clip (I3D needs >= 9)
    stride: int = 1  # step between the clip's frames
    clip: ClipMode = "first"  # window start: frame 0, or drawn from (seed, video index)
    fake_clip: ClipMode | None = None  # FAKE's window if not `clip` (StyleGAN-V: real random, fake first)
    seed: int = 0
    resize: Resize = "center-crop"  # stretch: TF FVD, TATS
    ddof: int = 1  # covariance 1/(N - ddof): 1 = VideoGPT/PVDM, 0 = StyleGAN-V
    bn_eps: float = 1e-5  # I3D BatchNorm eps: 1e-5 PyTorch port, 1e-3 TF
    detector: Literal["pytorch", "stylegan-v"] = "pytorch"  # stylegan-v: TorchScript
    i3d_weights: str | None = None
    batch_size: int = 8
    workers: int | None = None  # DataLoader decode workers; None = 0 on CPU, min(8, cores) on GPU
    amp: bool = False  # bf16 autocast on CUDA (faster, ~1% logit error); CPU is always fp32
    strict: bool = False  # a too-short or unreadable video is fatal instead of skipped
    kvd: bool = False
    real_split: RealSplit = "all"
    runs: int = 1  # fake sets scored against the same real statistics: mean and std (StyleGAN-V's num_runs)
    run_sets: RunSets = "subsets"
    protocol: str | None = None  # the named protocol these options came from (`named`), recorded
    save_stats_real: Path | None = None
    save_stats_fake: Path | None = None
    save_features: Path | None = None


def validate_options(opts: FVDOptions) -> None:
    if opts.frames < MIN_FRAMES:
        raise BadInputError(f"--frames must be at least {MIN_FRAMES}: I3D's temporal pooling fails on shorter "
                            f"clips (got {opts.frames}; the FVD protocol uses 16)")
    checks = [
        (opts.num_videos >= 1, f"--num-videos must be at least 1, not {opts.num_videos}"),
        (opts.stride >= 1, f"--stride must be at least 1, not {opts.stride}"),
        (opts.clip in CLIP_MODES, f"--clip must be one of {', '.join(CLIP_MODES)}, not {opts.clip!r}"),
        (opts.fake_clip in (None, *CLIP_MODES),
         f"--fake-clip must be one of {', '.join(CLIP_MODES)}, not {opts.fake_clip!r}"),
        (opts.real_split in REAL_SPLITS, f"--real-split must be one of {', '.join(REAL_SPLITS)}, not {opts.real_split!r}"),
        (opts.runs >= 1, f"--runs must be at least 1, not {opts.runs}"),
        (opts.run_sets in RUN_SETS, f"--run-sets must be one of {', '.join(RUN_SETS)}, not {opts.run_sets!r}"),
        (opts.runs == 1 or opts.run_sets == "subsets" or (opts.fake_clip or opts.clip) == "random",
         "--run-sets seeds draws each run's clip windows from seed + run: it needs --fake-clip random "
         "(with first-frame clips every run would score the same videos)"),
        (opts.resize in RESIZE_MODES, f"--resize must be one of {', '.join(RESIZE_MODES)}, not {opts.resize!r}"),
        (opts.ddof in (0, 1), f"--ddof must be 1 (1/(N-1)) or 0 (1/N, StyleGAN-V), not {opts.ddof}"),
        (opts.bn_eps > 0, f"--bn-eps must be positive, not {opts.bn_eps}"),
        (opts.detector in DETECTORS, f"--detector must be one of {', '.join(DETECTORS)}, not {opts.detector!r}"),
        (opts.batch_size >= 1, f"--batch-size must be at least 1, not {opts.batch_size}"),
        (opts.workers is None or opts.workers >= 0, f"--workers must be >= 0, not {opts.workers}"),
    ]
    for ok, message in checks:
        if not ok:
            raise BadInputError(message)


def side_options(opts: FVDOptions, side: str) -> FVDOptions:
    """The options one side is read with: FAKE takes `fake_clip` when it is set."""
    if side == "FAKE" and opts.fake_clip is not None:
        return dataclasses.replace(opts, clip=opts.fake_clip)
    return opts


def clip_span(frames: int, stride: int) -> int:
    """Frames of the source a clip covers."""
    return (frames - 1) * stride + 1


def clip_start(num_frames: int, opts: FVDOptions, index: int) -> int:
    """Window start for video `index` (its position in the sorted list) of `num_frames` frames.

    first: 0. random: uniform over every full window, from a generator seeded with
    (seed, index): the same video gets the same clip whatever the batch size, workers or ranks.
    """
    last = num_frames - clip_span(opts.frames, opts.stride)
    if last < 0:
        raise ValueError("video shorter than the clip")
    if opts.clip == "first" or last == 0:
        return 0
    return int(np.random.default_rng([opts.seed, index]).integers(0, last + 1))
