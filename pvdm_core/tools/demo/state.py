"""What the stages of `pvdm demo` share: its options, the run (options, config, folders) and
demo.json, the state that lets a re-run continue where the last one stopped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pvdm_core.base.atomic import write_text_atomic
from pvdm_core.base.config import Config
from pvdm_core.base.device import DeviceChoice
from pvdm_core.base.errors import BadInputError
from pvdm_core.data.datasets import SYNTHETIC_TEST_OFFSET
from pvdm_core.data.synthetic import SHAPES
from pvdm_core.io.runs import dumps
from pvdm_core.tools.demo.plan import DemoPlan

STATE = "demo.json"


@dataclass
class DemoOptions:
    out: Path
    device: DeviceChoice
    minutes: float = 30.0
    preset: str = "demo"
    overrides: list[str] = field(default_factory=list)
    num_eval: int = 32  # videos per FVD side; 64 is the quality benchmark's protocol, but costs 4x64 I3D clips
    seed: int = 0  # sampling seed: video i uses seed + i
    procs: int | None = None  # training processes (CPU only); None: min(2, cores) on a CPU, 1 on a GPU

    def settings(self) -> dict[str, Any]:
        """What a resumed run must share with the first one."""
        return {"preset": self.preset, "overrides": list(self.overrides), "minutes": self.minutes,
                "num_eval": self.num_eval, "seed": self.seed, "procs": self.procs}


class DemoState:
    """demo.json: settings, plan, finished stages with their results, seconds spent per stage."""

    def __init__(self, path: Path, settings: dict[str, Any]):
        self.path = path
        data = json.loads(path.read_text()) if path.is_file() else {"settings": settings, "stages": {}, "seconds": {}}
        if data["settings"] != settings:
            differ = ", ".join(k for k in settings if data["settings"].get(k) != settings[k])
            raise BadInputError(f"{path.parent} holds a demo run with other settings ({differ}: "
                                f"{ {k: data['settings'].get(k) for k in settings} }); give another --out or the same options")
        self.data = data

    def done(self, stage: str) -> bool:
        return stage in self.data["stages"]

    def result(self, stage: str) -> Any:
        return self.data["stages"][stage]

    def spent(self, stage: str) -> float:
        return self.data["seconds"].get(stage, 0.0)

    def add_time(self, stage: str, seconds: float) -> None:
        self.data["seconds"][stage] = round(self.spent(stage) + seconds, 2)
        self.save()

    def finish(self, stage: str, result: Any) -> None:
        self.data["stages"][stage] = result
        self.save()

    def save(self) -> None:
        write_text_atomic(self.path, dumps(self.data))


@dataclass
class DemoRun:
    """What the stages share: options, config, folders, state."""

    opts: DemoOptions
    cfg: Config
    state: DemoState

    def path(self, name: str) -> Path:
        return self.opts.out / name

    @property
    def plan(self) -> DemoPlan:
        return DemoPlan(**self.state.result("plan"))

    @property
    def class_names(self) -> list[str]:
        """A class-conditional demo's classes in label order (the synthetic set's shapes), else []."""
        return list(SHAPES) if self.cfg.unet.num_classes else []

    def real_videos(self) -> list[Path]:
        return sorted(self.path("real").glob("*.mp4"))

    def test_seed(self, i: int) -> int:
        return self.cfg.data.synthetic_seed + SYNTHETIC_TEST_OFFSET + i
