"""eval-fvd checks both sides before any I3D work, so bad input fails in seconds; folders still skip bad videos.

The detector is replaced: loading it raises unless a test installs a cheap stand-in, so a
check that comes too late shows up as exit 1 ("I3D was loaded") instead of exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pvdm_core.data.synthetic import synthetic_video, write_synthetic_videos
from pvdm_core.evaluation.fvd import FeatureStats, make_protocol
import pvdm_core.evaluation.fvd.evaluate as fvd_evaluate
from pvdm_core.io.video_io import to_uint8, write_video


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    return write_synthetic_videos(tmp_path_factory.mktemp("real") / "real", 4, 16, 32, first_seed=0)[0].parent


@pytest.fixture
def no_i3d(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("I3D was loaded before the inputs were checked")

    monkeypatch.setattr(fvd_evaluate, "load_i3d", refuse)


def one_line_error(cli, *args) -> str:
    r = cli("eval-fvd", *args, code=2)
    assert r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stderr


def test_missing_truncated_and_short_single_videos_fail_before_i3d(real, tmp_path, no_i3d, cli):
    data = (real / "synthetic_00000000.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_video(tmp_path / "short.mp4", to_uint8(synthetic_video(5, 7, 32)))
    assert "not found: " in one_line_error(cli, tmp_path / "missing.mp4", real)
    assert "not found: " in one_line_error(cli, real, tmp_path / "missing.mp4")
    for side, args in (("REAL", (tmp_path / "truncated.mp4", real)), ("FAKE", (real, tmp_path / "truncated.mp4"))):
        assert f"{side}: {tmp_path / 'truncated.mp4'}: cannot decode video" in one_line_error(cli, *args)
    err = one_line_error(cli, real, tmp_path / "short.mp4")
    assert "FAKE: " in err and "too short: a 16-frame clip with stride 1 needs 16 frames, it has 7" in err
    assert "needs 17 frames, it has 16" in one_line_error(cli, real / "synthetic_00000001.mp4", real,
                                                          "--stride", "2", "--frames", "9")


def test_statistics_protocol_and_empty_folder_fail_before_i3d(real, tmp_path, no_i3d, cli):
    FeatureStats(make_protocol(16, weights_sha256="x")).update(torch.eye(3).double().numpy()).save(tmp_path / "s.npz")
    assert "frames 16 in the file, 9 in this run" in one_line_error(cli, real, tmp_path / "s.npz", "--frames", "9")
    (tmp_path / "empty").mkdir()
    assert "no videos found" in one_line_error(cli, real, tmp_path / "empty")


def test_folders_still_skip_and_count_unreadable_videos(real, tmp_path, monkeypatch, cli):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in sorted(real.iterdir())[:3]:
        (mixed / p.name).write_bytes(p.read_bytes())
    (mixed / "broken.mp4").write_bytes(b"not a video")
    stand_in = lambda x: x.mean(dim=(3, 4)).flatten(1)  # (B, 3, T, 224, 224) -> (B, 3T): cheap features
    monkeypatch.setattr(fvd_evaluate, "load_i3d", lambda *a, **k: (stand_in, "stand-in"))
    r = cli("eval-fvd", real, mixed, "--json")
    res = json.loads(r.stdout)
    assert (res["n_real"], res["n_fake"], res["skipped_real"], res["skipped_fake"]) == (4, 3, 0, 1)
    assert "FAKE: skipped 1 video(s)" in r.stderr and "broken.mp4: cannot decode video" in r.stderr
