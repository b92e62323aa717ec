"""Rich progress bars and log lines on stderr, so stdout stays clean for results."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.text import Text
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

console = Console(stderr=True)


def progress_bar(disable: bool = False) -> Progress:
    """Bar with count, elapsed time, ETA and a free-text `info` field (loss, PSNR, it/s)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False,
        disable=disable or os.environ.get("PVDM_NO_PROGRESS") == "1",
    )


def log(message: str) -> None:
    """One line on stderr (rich markup allowed)."""
    if console.is_terminal:
        console.print(message, highlight=False)
    else:
        # Logs piped to a file get the text without the markup tags.
        print(Text.from_markup(message).plain, file=sys.stderr, flush=True)
