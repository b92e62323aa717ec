"""The FVD protocol: the settings that change I3D features, recorded with every statistics file.

Two statistics differing in a feature-changing key are not comparable. Other keys
(num_videos, source, stride, clip, ...) are recorded for information only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pvdm_core.base.errors import BadInputError

RESOLUTION = 224
Resize = Literal["center-crop", "stretch"]
RESIZE_MODES: tuple[str, ...] = get_args(Resize)
FEATURE_KEYS = ("frames", "resolution", "resize", "detector", "bn_eps", "weights_sha256")
# What eval-fvd checks before comparing statistics: FEATURE_KEYS plus AMP (bf16 logits differ
# from fp32 ones by ~1% relative, ten times the BatchNorm-eps effect).
PROTOCOL_KEYS = (*FEATURE_KEYS, "amp")


def make_protocol(frames: int, resize: str = "center-crop", detector: str = "pytorch",
                  bn_eps: float | None = 1e-5, weights_sha256: str = "", **info: Any) -> dict[str, Any]:
    """The protocol dict recorded with statistics; `info` adds informational keys."""
    if resize not in RESIZE_MODES:
        raise BadInputError(f"unknown resize {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
    if detector != "pytorch":
        bn_eps = None  # fixed inside the TorchScript file
    out = {"metric": "fvd", "frames": int(frames), "resolution": RESOLUTION, "resize": resize,
           "detector": detector, "bn_eps": bn_eps, "weights_sha256": weights_sha256}
    return {**out, **info}


def check_run_protocol(side: str, path: Path, file_protocol: Mapping[str, Any], run_protocol: Mapping[str, Any],
                       keys: tuple[str, ...]) -> None:
    """Refuse statistics `path` whose `keys` differ from this run's, naming every difference."""
    diffs = [f"{k} {file_protocol.get(k)!r} in the file, {run_protocol.get(k)!r} in this run"
             for k in keys if file_protocol.get(k) != run_protocol.get(k)]
    if diffs:
        raise BadInputError(f"{side} statistics {path} were computed under a different protocol: "
                            f"{'; '.join(diffs)}. Use matching options or recompute them.")
