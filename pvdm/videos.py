"""Videos in and out of Python: files, the embedded synthetic dataset, and a frame grid to look at.

Frames are uint8 arrays (T, H, W, 3) for one video, (N, T, H, W, 3) for several: what
`pvdm.load(...).sample` returns and `pvdm.fvd` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL.Image import Image

from pvdm_core.base.errors import BadInputError
from pvdm_core.data.datasets import synthetic_first_seed
from pvdm_core.data.synthetic import synthetic_frames
from pvdm_core.io.contact_sheet import SheetRow, render_contact_sheet
from pvdm_core.io.video_io import read_video, write_video


def synthetic(num: int = 1, frames: int = 16, resolution: int = 32, seed: int = 0,
              split: Literal["train", "test"] = "test", class_labels: bool = False) -> np.ndarray:
    """`num` videos of the embedded moving-shapes dataset -> uint8 (num, frames, R, R, 3).

    Video i is `pvdm synth --seed SEED --split SPLIT`'s video i: a pure function of (seed,
    split, i, frames, resolution), the test split never overlapping train. `class_labels`:
    one shape per video, its class (the class-labelled set).
    """
    if num < 1:
        raise BadInputError(f"num must be at least 1, not {num}")
    first = synthetic_first_seed(seed, split)
    return np.stack([synthetic_frames(first + i, frames, resolution, class_labels) for i in range(num)])


def contact_sheet(videos: np.ndarray | Sequence[np.ndarray], labels: Sequence[str] | None = None, every: int = 1,
                  scale: int = 3, title: str = "") -> Image:
    """A frame grid, one row per video: frames 0, every, 2*every, ... side by side, upscaled
    `scale` times, each row labelled (default "video i"), as in `pvdm demo`'s contact sheet.

    `videos`: uint8 (N, T, H, W, 3), or a list of (T, H, W, 3). Returns a PIL image: it shows
    itself in a notebook, and `.save("grid.png")` writes it.
    """
    rows = [np.asarray(v) for v in videos]
    if not rows or any(v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8 for v in rows):
        raise BadInputError("contact_sheet takes uint8 videos (N, T, H, W, 3) or a list of (T, H, W, 3)")
    labels = list(labels) if labels is not None else [f"video {i}" for i in range(len(rows))]
    if len(labels) != len(rows):
        raise BadInputError(f"{len(labels)} labels for {len(rows)} videos")
    return render_contact_sheet([SheetRow(label, v) for label, v in zip(labels, rows)], title, every=every, scale=scale)


__all__ = ["contact_sheet", "read_video", "synthetic", "write_video"]
