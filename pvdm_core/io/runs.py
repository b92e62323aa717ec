"""Run folders: resolved config.yaml, metrics.jsonl and checkpoints with a `latest` pointer."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from pvdm_core.base.atomic import write_text_atomic
from pvdm_core.base.config import Config
from pvdm_core.base.errors import BadInputError


def default_run_dir(preset: str, command: str) -> Path:
    return Path("runs") / f"{preset}-{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(out: Path | None, cfg: Config, command: str) -> Path:
    run = Path(out) if out is not None else default_run_dir(cfg.preset, command)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BadInputError(f"--out {run} is a file, not a run folder: pick another path") from None
    write_text_atomic(run / "config.yaml", cfg.to_yaml())
    return run


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: map them to null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(json_safe(value), allow_nan=False)


class MetricsLog:
    """Append-only metrics.jsonl, one flushed JSON object per line."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def write(self, **record: Any) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(dumps({"time": round(time.time(), 3), **record}) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
