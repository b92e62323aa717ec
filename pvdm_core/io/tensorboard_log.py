"""TensorBoard event files for a run (`run.tensorboard: true`), an optional extra.

Scalars come from the metrics.jsonl records, tagged `<split>/<key>` (`train/loss`,
`test/psnr`, `gan_divergence/psnr`); events also go in as text; preview videos as animated
GIFs (TensorBoard's own video format, shown under Images), encoded with imageio so no
moviepy is needed.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from pvdm_core.base.errors import BadInputError

INSTALL_HINT = "pip install 'pvdm[tensorboard]'"
SKIP_KEYS = {"step", "time"}


def require_tensorboard() -> None:
    """One clear error before a run starts, instead of an ImportError deep inside it."""
    try:
        import tensorboard  # noqa: F401 - torch.utils.tensorboard needs it
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise BadInputError(f"run.tensorboard=true needs the tensorboard package: {INSTALL_HINT}") from None


def scalar_items(record: dict[str, Any]) -> list[tuple[str, float]]:
    """(key, value) of the record's numbers, booleans and bookkeeping keys left out."""
    return [(k, float(v)) for k, v in record.items()
            if k not in SKIP_KEYS and isinstance(v, numbers.Real) and not isinstance(v, bool)]


class TensorBoardLog:
    """Rank 0's event writer. purge_step: on resume, TensorBoard drops what a crashed run logged past the checkpoint."""

    def __init__(self, log_dir: Path, purge_step: int | None = None, flush_secs: int = 30):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step or None, flush_secs=flush_secs)

    def record(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl record: its numbers as scalars; an event record also as text."""
        step, walltime = record.get("step"), record.get("time")
        prefix = record.get("event") or record.get("split") or "train"
        for key, value in scalar_items(record):
            self.writer.add_scalar(f"{prefix}/{key}", value, step, walltime=walltime)
        if "event" in record:
            text = ", ".join(f"{k} {v}" for k, v in record.items() if k not in SKIP_KEYS | {"event"})
            self.writer.add_text("events", f"step {step}: {record['event']}: {text}", step, walltime=walltime)

    def video(self, tag: str, frames: np.ndarray, step: int, fps: float = 8.0) -> None:
        """(T, H, W, 3) uint8 frames as an animated GIF."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        t, h, w, c = frames.shape
        gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)
        image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=gif)
        # SummaryWriter has no GIF entry point without moviepy; its file writer takes any summary.
        self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def close(self) -> None:
        self.writer.close()
