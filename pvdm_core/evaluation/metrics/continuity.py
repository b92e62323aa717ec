"""How smoothly a generated clip continues the one before it: the jump at the clip boundary.

PVDM makes long videos clip by clip, each conditioned on the last; when the condition is not
used well, the video jumps at every boundary. The measure is the mean absolute frame difference
across the boundary against the mean inside the clips: a real video scores about 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pvdm_core.io.video_io import to_uint8


def boundary_jump(videos: np.ndarray, clip: int) -> dict[str, float]:
    """uint8 (N, T, H, W, 3) videos whose second clip starts at frame `clip`: mean |x_{t+1} - x_t|
    (0-255 scale) across the boundary (t = clip - 1), elsewhere ("inside"), inside clip 2 alone
    (the generated one in an extension), and boundary / inside ("ratio"; None for still videos)."""
    d = np.abs(np.diff(videos.astype(np.float32), axis=1)).mean(axis=(2, 3, 4))  # (N, T-1)
    boundary, inside = float(d[:, clip - 1].mean()), float(np.delete(d, clip - 1, axis=1).mean())
    return {"boundary": boundary, "inside": inside, "inside2": float(d[:, clip:].mean()),
            "ratio": boundary / inside if inside > 0 else None}


def reconstruction_jump(reconstruct: Callable[[torch.Tensor], torch.Tensor], videos: torch.Tensor,
                        clip: int) -> dict[str, float]:
    """The autoencoder's own jump, a floor for any generator on it: `videos` (N, 3, 2 clip, H, W)
    in [-1, 1], each clip through `reconstruct` (encode + decode) on its own, as every generated
    clip is decoded; its reconstruction error differs from one clip to the next."""
    rebuilt = torch.cat([reconstruct(videos[:, :, k * clip:(k + 1) * clip]).float().cpu() for k in (0, 1)], dim=2)
    return boundary_jump(np.stack([to_uint8(v) for v in rebuilt]), clip)
