"""The contact sheets of benchmarks/classes.py: classes x guidance weights, and two clips under
previous-clip guidance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pvdm_core.data.synthetic import SHAPES
from pvdm_core.io.contact_sheet import SheetRow, write_contact_sheet
from pvdm_core.io.video_io import to_uint8


def reference_frames(videos: torch.Tensor, rebuilt: torch.Tensor, labels: np.ndarray,
                     per_class: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per class, the middle frame of its first `per_class` videos, as they are and after the
    autoencoder: uint8 (per_class, H, W, 3) each, what a sample could at best look like."""
    middle = lambda vs: np.stack([to_uint8(v)[v.shape[1] // 2] for v in vs])  # noqa: E731
    out = {}
    for c, name in enumerate(SHAPES):
        idx = np.flatnonzero(labels == c)[:per_class]
        out[name] = (middle(videos[idx]), middle(rebuilt[idx]))
    return out


def class_sheet(path: Path, runs: dict[float, np.ndarray], scores: dict[float, dict],
                reference: dict[str, tuple[np.ndarray, np.ndarray]], per_row: int = 8) -> Path:
    """Rows: per class, real test videos of that class and their AE reconstructions, then class x
    guidance weight; columns: frame 8 of the first `per_row` videos of that class (the same seeds
    in every generated row of a class, so a column shows one noise under each weight)."""
    rows = []
    for c, name in enumerate(SHAPES):
        real, rebuilt = reference[name]
        rows += [SheetRow(f"real {name}s\ntest videos", real[:per_row], new_group=c > 0),
                 SheetRow("their AE\nreconstructions", rebuilt[:per_row])]
        for w, videos in runs.items():
            idx = np.arange(c, len(videos), len(SHAPES))[:per_row]
            hits = scores[w]["confusion"][c][c]
            rows.append(SheetRow(f"{name}, w = {w:g}\njudge: {hits}/{sum(scores[w]['confusion'][c])} {name}",
                                 videos[idx, videos.shape[1] // 2]))
    return write_contact_sheet(path, rows, "Class-conditional tiny model: --class x --guidance w",
                               "frame 8 of videos 1-8 of each class; same seeds down a class", every=1,
                               columns=[f"video {i + 1}" for i in range(per_row)])


def boundary_sheet(path: Path, real: np.ndarray, runs: dict[float, np.ndarray], extended: dict[float, np.ndarray],
                   clip: int) -> Path:
    """Per cond-guidance weight two generated 32-frame videos and the first real test video
    extended from its clip 1 (`extend`); that real video on top; clip 2 underlined."""
    rows = [SheetRow("real test video", real[0])]
    for w, videos in runs.items():
        rows += [SheetRow(f"--cond-guidance {w:g}\nvideo {i + 1}", videos[i], generated_from=clip, new_group=i == 0)
                 for i in range(2)]
        rows.append(SheetRow(f"--cond-guidance {w:g}\nreal clip 1, extended", extended[w][0], generated_from=clip))
    return write_contact_sheet(path, rows, "Two clips: --cond-guidance w on clip 2",
                               "every 2nd frame of 32; clip 2 underlined; an extended row's clip 1 is the real one",
                               every=2)
