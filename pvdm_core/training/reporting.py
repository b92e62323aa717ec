"""What a training run tells the people watching it, from one place the loops call.

Every record goes to metrics.jsonl (`runs.MetricsLog`), to TensorBoard when
`run.tensorboard` is on, and, off a terminal (a batch job's log), out as one plain stderr
line: training records with step/total, losses, the last held-out PSNR, it/s and ETA;
evaluations, events and checkpoints as they happen. On a terminal the rich bar shows the
same. Only rank 0 reports (enabled=False elsewhere).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pvdm_core.base.progress import format_duration, plain_lines, progress_bar, progress_line
from pvdm_core.io.runs import MetricsLog
from pvdm_core.io.tensorboard_log import TensorBoardLog, require_tensorboard, scalar_items
from pvdm_core.io.video_io import read_video

TENSORBOARD_DIR = "tensorboard"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class RunReporter:
    """metrics.jsonl + TensorBoard + progress for one run; `write` takes MetricsLog's records."""

    def __init__(self, run_dir: Path, command: str, total: int, tensorboard: bool = False, enabled: bool = True):
        if tensorboard:
            require_tensorboard()  # on every rank: all fail alike, before any work
        self.run_dir, self.command, self.total, self.enabled = Path(run_dir), command, total, enabled
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", enabled)
        self.tensorboard = tensorboard and enabled
        self._tb: TensorBoardLog | None = None
        self._bar, self._task = None, None
        self._t0, self._start = time.monotonic(), 0
        self._last_test: dict[str, Any] = {}

    @contextlib.contextmanager
    def live(self, start_step: int) -> Iterator[RunReporter]:
        """The loop's span: the rich bar (on a terminal) and the TensorBoard writer are open inside it."""
        self._t0, self._start = time.monotonic(), start_step
        if start_step and self.enabled:  # resumed: the lines show the last held-out scores from the start
            tests = [r for r in self.metrics.read() if r.get("split") == "test" and r.get("step", 0) <= start_step]
            self._last_test = tests[-1] if tests else {}
        if self.tensorboard:
            # steps up to start_step are in the checkpoint; what a crashed run logged after it goes
            self._tb = TensorBoardLog(self.run_dir / TENSORBOARD_DIR, purge_step=start_step + 1 if start_step else None)
        try:
            with progress_bar(disable=not self.enabled, lines=False) as bar:
                self._bar, self._task = bar, bar.add_task(self.command, total=self.total, completed=start_step, info="")
                yield self
        finally:
            self._bar = None
            if self._tb is not None:
                self._tb.close()
                self._tb = None

    def write(self, **record: Any) -> None:
        """One metrics record (training, split="test", or event=...) to every destination."""
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        self.metrics.write(**record)
        if self._tb is not None:
            self._tb.record(record)
        if record.get("split") == "test":
            self._last_test = record
        if plain_lines():
            progress_line(self._line(record))

    def progress(self, step: int, info: str) -> None:
        """Every step: the terminal bar (off a terminal, `write`'s lines report instead)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=info)

    def checkpoint(self, step: int, path: Path) -> None:
        if self.enabled and plain_lines():
            progress_line(f"{self._where(step)} checkpoint {path}")

    def preview(self, path: Path, step: int, tag: str = "preview") -> None:
        """The preview video just written to `path`, into TensorBoard (read back: the loops write only files)."""
        if self._tb is not None:
            self._tb.video(tag, read_video(path), step)

    def _where(self, step: int) -> str:
        return f"{self.command} step {step}/{self.total}"

    def _line(self, record: dict[str, Any]) -> str:
        step = record.get("step", 0)
        values = " ".join(f"{k} {_fmt(v)}" for k, v in scalar_items(record) if k != "it_s")
        if "event" in record:
            action = f": {record['action']}" if "action" in record else ""
            return f"{self._where(step)} event {record['event']} {values}{action}"
        if record.get("split"):
            return f"{self._where(step)} {record['split']} {values}"
        elapsed = time.monotonic() - self._t0
        rate = record.get("it_s") or ((step - self._start) / elapsed if elapsed > 0 else 0.0)
        eta = format_duration((self.total - step) / rate) if rate > 0 else "?"
        test = " ".join(f"{k} {_fmt(v)}" for k, v in scalar_items(self._last_test) if k in ("psnr", "ssim"))
        test = f" | test {test} (step {self._last_test['step']})" if test else ""
        return (f"{self._where(step)} ({100 * step / max(self.total, 1):.0f}%) {values}{test} | "
                f"{rate:.3g} it/s, elapsed {format_duration(elapsed)}, ETA {eta}")
