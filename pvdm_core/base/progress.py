"""Progress and log lines on stderr, so stdout stays clean for results.

On a terminal, progress is a live rich bar. Off a terminal (a batch job's log file, a pipe)
a live bar draws nothing until it ends, so `progress_bar` returns a `LineProgress` instead:
the same add_task/update/advance calls, printed as plain timestamped lines every few items
or every 30 s, whichever comes first. PVDM_NO_PROGRESS=1 silences both.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

console = Console(stderr=True)
LINE_INTERVAL_S = 30.0  # the longest a batch-job log goes without a progress line
LINES_PER_TASK = 20  # with a known total: a line every 5% of it
LINE_EVERY_UNKNOWN = 100  # items between lines when the total is unknown


def silenced() -> bool:
    return os.environ.get("PVDM_NO_PROGRESS") == "1"


def plain_lines() -> bool:
    """True when stderr is not a terminal: progress goes out as plain lines."""
    return not console.is_terminal


def format_duration(seconds: float) -> str:
    """H:MM:SS, with days in front past 24 h ('2d 03:04:05'): ETAs of week-long runs stay readable."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    days, rest = divmod(int(round(seconds)), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}d {h:02d}:{m:02d}:{s:02d}" if days else f"{h}:{m:02d}:{s:02d}"


def progress_line(message: str) -> None:
    """One plain, timestamped progress line on stderr (silenced by PVDM_NO_PROGRESS=1)."""
    if not silenced():
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _count(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    info: str
    start_completed: float
    t0: float
    last_line_t: float
    last_line_completed: float


class LineProgress:
    """rich.progress.Progress's add_task/update/advance as plain lines (see the module docstring)."""

    def __init__(self, interval_s: float = LINE_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.interval_s, self.clock = interval_s, clock
        self._tasks: list[_Task] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for i, task in enumerate(self._tasks):  # the final count, unless it was just printed
            if task.completed != task.last_line_completed:
                self._print(i)

    def add_task(self, description: str, total: float | None = 100.0, completed: float = 0,
                 info: str = "", **_: Any) -> int:
        now = self.clock()
        self._tasks.append(_Task(description, total, completed, info, completed, now, now, completed))
        self._print(len(self._tasks) - 1)
        return len(self._tasks) - 1

    def update(self, task_id: int, *, completed: float | None = None, advance: float | None = None,
               total: float | None = None, info: str | None = None, **_: Any) -> None:
        task = self._tasks[task_id]
        if total is not None:
            task.total = total
        if info is not None:
            task.info = info
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        every = math.ceil(task.total / LINES_PER_TASK) if task.total else LINE_EVERY_UNKNOWN
        due = self.clock() - task.last_line_t >= self.interval_s
        finished = task.total is not None and task.completed >= task.total
        if due or finished or task.completed - task.last_line_completed >= every:
            self._print(task_id)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _print(self, task_id: int) -> None:
        task = self._tasks[task_id]
        now = self.clock()
        task.last_line_t, task.last_line_completed = now, task.completed
        elapsed = now - task.t0
        done = task.completed - task.start_completed
        rate = done / elapsed if elapsed > 0 and done > 0 else None
        count = f"{_count(task.completed)}/{_count(task.total)} ({100 * task.completed / task.total:.0f}%)" \
            if task.total else _count(task.completed)
        parts = [task.description, count]
        if rate is not None:
            parts.append(f"{rate:.3g} it/s")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if rate is not None and task.total:
            parts.append(f"ETA {format_duration((task.total - task.completed) / rate)}")
        if task.info:
            parts.append(Text.from_markup(task.info).plain)
        progress_line(" ".join(parts))


def progress_bar(disable: bool = False, lines: bool = True) -> Progress | LineProgress:
    """Bar with count, elapsed time, ETA and a free-text `info` field (loss, PSNR, it/s).

    Off a terminal: a LineProgress, or nothing with lines=False (for callers that print
    their own lines, as the training loops do through `reporting.RunReporter`).
    """
    if not (disable or silenced()) and plain_lines() and lines:
        return LineProgress()
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False, disable=disable or silenced() or plain_lines(),
    )


@contextlib.contextmanager
def paused(bar: Progress | LineProgress) -> Iterator[None]:
    """A live bar stops drawing while another process (a training rank) draws its own on the
    same terminal; plain lines need no pause."""
    if isinstance(bar, Progress):
        bar.stop()
    try:
        yield
    finally:
        if isinstance(bar, Progress):
            bar.start()


def log(message: str) -> None:
    """One line on stderr (rich markup allowed)."""
    if console.is_terminal:
        console.print(message, highlight=False)
    else:
        # Logs piped to a file get the text without the markup tags.
        print(Text.from_markup(message).plain, file=sys.stderr, flush=True)
