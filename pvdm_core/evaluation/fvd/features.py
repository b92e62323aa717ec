"""Uint8 clips -> I3D input -> features: the detector's side of the FVD pipeline.

`preprocess_for_i3d` follows PVDM/DIGAN/StyleGAN-V (short side bilinear to 224 and center
crop, or stretch to 224x224; [-1, 1]); `compute_features` batches clips through any
extractor (the real I3D from `load_i3d`, or a stand-in in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from pvdm_core.base.errors import BadInputError
from pvdm_core.evaluation.fvd.protocol import RESIZE_MODES, RESOLUTION
from pvdm_core.evaluation.fvd.stats import FeatureStats


def preprocess_for_i3d(frames: torch.Tensor | np.ndarray, resize: str = "center-crop",
                       resolution: int = RESOLUTION) -> torch.Tensor:
    """uint8 clips (B, T, H, W, 3) -> float32 (B, 3, T, 224, 224) in [-1, 1].

    center-crop (PVDM, VideoGPT, DIGAN): bilinear resize (no antialiasing) of the shorter
    side to 224, the longer to ceil(L * 224 / S), then a center crop. stretch (TF FVD,
    TATS): bilinear resize straight to 224x224. Grayscale (..., 1) is repeated to RGB.
    """
    if resize not in RESIZE_MODES:
        raise BadInputError(f"unknown resize {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
    x = torch.as_tensor(frames)
    if x.ndim != 5 or x.shape[-1] not in (1, 3):
        raise BadInputError(f"expected uint8 videos shaped (B, T, H, W, 3); got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise BadInputError(f"expected uint8 videos (0..255); got {x.dtype}")
    b, t, h, w, c = x.shape
    x = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float() / 255.0
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    if resize == "stretch":
        size = (resolution, resolution)
    elif h < w:  # integer ceil: the reference's float ceil can overshoot by one pixel
        size = (resolution, -(-w * resolution // h))
    else:
        size = (-(-h * resolution // w), resolution)
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    x = x[:, :, top:top + resolution, left:left + resolution]
    x = (x - 0.5) * 2.0
    return x.reshape(b, t, 3, resolution, resolution).permute(0, 2, 1, 3, 4).contiguous()


# ---------------------------------------------------------------- 2. features


def compute_features(
    extractor: Callable[[torch.Tensor], torch.Tensor],
    clips: Iterable[torch.Tensor | np.ndarray],
    batch_size: int = 8,
    resize: str = "center-crop",
    stats: FeatureStats | None = None,
    progress_callback: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run `extractor` over uint8 clips (T, H, W, 3), in batches; return (N, D) float64.

    Each clip is preprocessed on its own, so clips of different sizes can share a batch; all
    must have the same number of frames. If `stats` is given, it is updated batch by batch.
    `progress_callback(n_done)` is called after each batch.
    """
    if batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1; got {batch_size}")
    out: list[np.ndarray] = []
    batch: list[torch.Tensor] = []
    done = 0

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        if len({clip.shape[2] for clip in batch}) > 1:
            raise BadInputError(f"clips in one batch have different frame counts: {[c.shape[2] for c in batch]}")
        feats = extractor(torch.cat(batch)).detach().to("cpu", torch.float64).numpy()
        batch.clear()
        if stats is not None:
            stats.update(feats)
        out.append(feats)
        done += feats.shape[0]
        if progress_callback is not None:
            progress_callback(done)

    for clip in clips:
        batch.append(preprocess_for_i3d(torch.as_tensor(clip)[None], resize=resize))
        if len(batch) == batch_size:
            flush()
    flush()
    return np.concatenate(out) if out else np.zeros((0, 0))
