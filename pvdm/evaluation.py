"""`pvdm.fvd`: Fréchet Video Distance from Python, by the function `pvdm eval-fvd` runs.

A side is what `pvdm eval-fvd` takes (a folder, a video, an array file or a statistics file)
or videos in memory: uint8 (N, T, H, W, 3), one video (T, H, W, 3), or a list of videos of any
lengths. Videos in memory are written to a temporary folder as .npy files (memory-mapped when
read back), so both paths share every step after that.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from pvdm_core.base.device import choose_device
from pvdm_core.base.progress import progress_bar
from pvdm_core.evaluation.fvd import FVDOptions, evaluate_fvd
from pvdm_core.evaluation.fvd.named import resolve_options

Side = Union[str, Path, np.ndarray, Sequence[np.ndarray]]  # a path eval-fvd takes, or uint8 videos
PATH_OPTIONS = ("save_stats_real", "save_stats_fake", "save_features")


def _side_path(side: Side, folder: Path, name: str) -> Path:
    """A path for eval-fvd's sources: paths as given, arrays saved under `folder`."""
    if isinstance(side, (str, Path)):
        return Path(side)
    if isinstance(side, np.ndarray):
        np.save(folder / f"{name}.npy", side)
        return folder / f"{name}.npy"
    videos = folder / name
    videos.mkdir()
    for i, video in enumerate(side):
        np.save(videos / f"{i:06d}.npy", np.asarray(video))
    return videos


def fvd_options(protocol: str | None = None, **options: Any) -> FVDOptions:
    """`pvdm eval-fvd`'s options by their Python names (num_videos, frames, stride, clip, seed,
    resize, ddof, bn_eps, detector, i3d_weights, batch_size, workers, amp, strict, kvd,
    save_stats_real, save_stats_fake, save_features), over the named `protocol`'s settings
    (`pvdm eval-fvd --list-protocols`), the CLI's defaults for the others."""
    return _resolve(protocol, options)[0]


def _resolve(protocol: str | None, options: dict[str, Any]) -> tuple[FVDOptions, dict[str, dict[str, Any]]]:
    """The options and what they override of the protocol, as eval-fvd resolves them."""
    paths = {k: Path(options[k]) for k in PATH_OPTIONS if options.get(k) is not None}
    if options.get("i3d_weights") is not None:
        options["i3d_weights"] = str(options["i3d_weights"])
    return resolve_options(protocol, {**options, **paths})


def fvd(real: Side, fake: Side, protocol: str | None = None, *, device: str | None = None, progress: bool = False,
        **options: Any) -> dict[str, Any]:
    """FVD between `real` and `fake` -> the dict `pvdm eval-fvd REAL FAKE --json` prints.

    `result["fvd"]` is the distance; the other keys record the protocol (frames, resolution,
    resize, detector and its weights digest, ddof, ...), the videos used and skipped, and "kvd"
    with kvd=True. `options` are eval-fvd's (see `fvd_options`), e.g. frames=16, num_videos=2048,
    save_stats_real="ucf.stats.npz" (then pass that file as `real` next time). `device` as for
    `pvdm.load`; `progress`: a bar per side on stderr. Needs the I3D weights as eval-fvd does
    (`pvdm info` says where they come from).
    """
    opts, overridden = _resolve(protocol, options)
    choice = choose_device(device, "off")  # precision is evaluate_fvd's (opts.amp)
    with tempfile.TemporaryDirectory(prefix="pvdm-fvd-") as tmp, progress_bar(disable=not progress) as bar:

        def start(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(f"I3D {description}", total=total, info="")
            return lambda n: bar.advance(task, n)

        result = evaluate_fvd(_side_path(real, Path(tmp), "real"), _side_path(fake, Path(tmp), "fake"), opts, choice,
                              progress=start if progress else None)
    return {**result, "overridden": overridden}


__all__ = ["Side", "fvd", "fvd_options"]
