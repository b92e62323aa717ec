"""eval-fvd's options, their checks, and which frames of a video form its clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from pvdm_core.errors import BadInputError
from pvdm_core.fvd.protocol import RESIZE_MODES, Resize
from pvdm_core.metrics.i3d_weights import DETECTORS
from pvdm_core.models.i3d import MIN_FRAMES

ClipMode = Literal["first", "random"]
CLIP_MODES: tuple[str, ...] = get_args(ClipMode)


@dataclass(frozen=True)
class FVDOptions:
    num_videos: int = 2048  # clips per side (one per video): the first N usable videos, or all
    frames: int = 16  # frames per clip (I3D needs >= 9)
    stride: int = 1  # step between the clip's frames
    clip: ClipMode = "first"  # window start: frame 0, or drawn from (seed, video index)
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
