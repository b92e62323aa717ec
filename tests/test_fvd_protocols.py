"""Named FVD protocols, --runs, --real-split, statistics checks, and FVD during training.

I3D is replaced by a stand-in (each frame's mean value; see test_eval_fvd.frame_ids) so the
numbers can be computed by hand; the real detector runs in the slow tests at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import SMALL
from pvdm_core.base.errors import BadInputError
from pvdm_core.data.synthetic import write_synthetic_videos
from pvdm_core.evaluation.fvd import FeatureStats, FVDOptions, fvd_from_stats, make_protocol
from pvdm_core.evaluation.fvd.named import PROTOCOLS, resolve_options
from pvdm_core.evaluation.fvd.sources import real_videos
from pvdm_core.io.video_io import write_video
from test_eval_fvd import frame_ids, i3d_weights, one_line_error, result_json  # noqa: F401 - fixture

# What each protocol must set, written from the anchors' code (named.py's table cites the files).
EXPECTED = {
    "fvd2048_16f": dict(num_videos=2048, frames=16, stride=1, clip="random", fake_clip="first", resize="stretch",
                        ddof=0, detector="stylegan-v", kvd=False, real_split="convention"),
    "fvd2048_128f": dict(num_videos=2048, frames=128, stride=1, clip="random", fake_clip="first", resize="stretch",
                         ddof=0, detector="stylegan-v", kvd=False, real_split="convention"),
    "fvd2048_128f_subsample8f": dict(num_videos=2048, frames=16, stride=8, clip="random", fake_clip="first",
                                     resize="stretch", ddof=0, detector="stylegan-v", kvd=False),
    "kvd2048_16f": dict(num_videos=2048, frames=16, stride=1, resize="stretch", ddof=0, detector="stylegan-v",
                        kvd=True),
    "pvdm_fvd16": dict(num_videos=2048, frames=16, stride=1, clip="random", fake_clip="first", resize="center-crop",
                       ddof=1, detector="pytorch", bn_eps=1e-5, real_split="convention"),
    "pvdm_fvd128": dict(num_videos=2048, frames=128, resize="center-crop", ddof=1, detector="pytorch", bn_eps=1e-5),
    "tats_fvd16": dict(num_videos=2048, frames=16, clip="first", resize="stretch", ddof=1, detector="pytorch",
                       bn_eps=1e-5),
    "tf_fvd16": dict(num_videos=2048, frames=16, clip="first", resize="stretch", ddof=1, detector="pytorch",
                     bn_eps=1e-3),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_protocol_resolves_to_its_table(name):
    opts, overridden = resolve_options(name, {})
    assert overridden == {} and opts.protocol == name and opts.runs == 1
    assert {k: getattr(opts, k) for k in EXPECTED[name]} == EXPECTED[name]
    conventions = dict(PROTOCOLS[name].conventions)
    assert {"detector", "covariance", "input range, resize", "real split"} <= set(conventions)
    assert ".py" in PROTOCOLS[name].source  # the code it follows is named


def test_explicit_options_override_and_are_reported():
    opts, overridden = resolve_options("fvd2048_16f", {"detector": "pytorch", "frames": 16, "runs": 3})
    assert opts.detector == "pytorch" and opts.resize == "stretch" and opts.runs == 3
    assert overridden == {"detector": {"protocol": "stylegan-v", "given": "pytorch"}}  # frames 16 is no change
    assert resolve_options(None, {})[0] == FVDOptions()  # no protocol: the plain defaults
    with pytest.raises(BadInputError, match="unknown FVD protocol 'fvd16'.*fvd2048_16f"):
        resolve_options("fvd16", {})


def test_list_protocols_prints_the_table_with_sources(cli):
    out = cli("eval-fvd", "--list-protocols").stdout
    assert all(f"{name}: " in out for name in PROTOCOLS)
    assert "metric_main.py" in out and "evals/fvd/fvd.py" in out and "covariance: 1/N" in out
    table = cli.json("eval-fvd", "--list-protocols")["protocols"]
    assert [p["name"] for p in table] == list(PROTOCOLS) and table[0]["settings"]["ddof"] == 0


# ---------------------------------------------------------------- runs, with the stand-in detector


def flat_video(values: np.ndarray) -> np.ndarray:
    """(T, 8, 8, 3) uint8 whose frame t is filled with values[t]: the stand-in's features are `values`."""
    return np.asarray(values, np.uint8)[:, None, None, None].repeat(8, 1).repeat(8, 2).repeat(3, 3)


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setattr("pvdm_core.evaluation.fvd.evaluate.load_i3d", lambda *a, **k: (frame_ids, "standin"))


@pytest.fixture
def videos(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    real, fake = rng.integers(0, 200, (5, 12)), rng.integers(20, 255, (6, 12))  # (videos, frames)
    np.save(tmp_path / "real.npy", np.stack([flat_video(v) for v in real]))
    np.save(tmp_path / "fake.npy", np.stack([flat_video(v) for v in fake]))
    return {"real": real, "fake": fake, "REAL": tmp_path / "real.npy", "FAKE": tmp_path / "fake.npy"}


def test_runs_on_disjoint_subsets_equal_a_direct_computation(cli, standin, videos):
    res = result_json(cli("eval-fvd", videos["REAL"], videos["FAKE"], "--protocol", "fvd2048_16f", "--detector",
                          "pytorch", "-n", "2", "-f", "9", "--clip", "first", "--runs", "3", "--kvd", "--json"))
    real = FeatureStats().update(videos["real"][:2, :9])
    direct = [fvd_from_stats(real, FeatureStats().update(videos["fake"][2 * k:2 * k + 2, :9]), ddof=0)
              for k in range(3)]
    assert [r["fvd"] for r in res["runs"]] == pytest.approx(direct, rel=1e-9)
    assert res["fvd"] == pytest.approx(np.mean(direct), rel=1e-9) and res["fvd_std"] == pytest.approx(np.std(direct))
    assert res["num_runs"] == 3 and res["n_fake"] == 2 and "kvd_std" in res
    assert res["protocol"] == "fvd2048_16f" and res["ddof"] == 0 and res["resize"] == "stretch"
    assert set(res["overridden"]) == {"detector", "num_videos", "frames", "clip"}


def test_runs_on_seeds_are_reproducible_and_differ(cli, standin, videos):
    args = ("eval-fvd", videos["REAL"], videos["FAKE"], "-n", "4", "-f", "9", "--fake-clip", "random", "--runs", "2",
            "--run-sets", "seeds", "--seed", "5", "--json")
    first, again = result_json(cli(*args)), result_json(cli(*args))
    assert first["runs"] == again["runs"] and first["runs"][0]["fvd"] != first["runs"][1]["fvd"]
    assert (first["clip"], first["fake_clip"]) == ("first", "random")


def test_run_errors_come_before_any_detector_work(cli, videos, monkeypatch):
    monkeypatch.setenv("PVDM_I3D_WEIGHTS", "/nonexistent/i3d.pt")  # loading I3D would fail
    err = one_line_error(cli("eval-fvd", videos["REAL"], videos["FAKE"], "-n", "4", "-f", "9", "--runs", "2", code=2))
    assert "needs 8 fake videos" in err and "--run-sets seeds" in err
    err = one_line_error(cli("eval-fvd", videos["REAL"], videos["FAKE"], "-f", "9", "--runs", "2", "--run-sets", "seeds",
                             code=2))
    assert "--fake-clip random" in err


def test_statistics_from_another_protocol_are_refused_naming_the_difference(cli, standin, videos, tmp_path):
    stats = tmp_path / "sub8.stats.npz"
    cli("eval-fvd", videos["REAL"], videos["FAKE"], "--protocol", "fvd2048_128f_subsample8f", "--detector", "pytorch",
        "-f", "9", "--stride", "1", "-n", "5", "--save-stats-real", stats)
    saved = FeatureStats.load(stats).protocol
    assert (saved["protocol"], saved["clip"], saved["real_split"], saved["ddof"]) == (
        "fvd2048_128f_subsample8f", "random", "all", 0)
    ok = result_json(cli("eval-fvd", stats, videos["FAKE"], "--protocol", "fvd2048_16f", "--detector", "pytorch",
                         "-f", "9", "--json"))
    assert ok["n_real"] == 5  # the same sampling: accepted
    err = one_line_error(cli("eval-fvd", stats, videos["FAKE"], "--protocol", "pvdm_fvd16", "-f", "9", code=2))
    assert "REAL statistics" in err and "resize 'stretch' in the file, 'center-crop' in this run" in err
    err = one_line_error(cli("eval-fvd", stats, videos["FAKE"], "--protocol", "fvd2048_128f_subsample8f",
                             "--detector", "pytorch", "-f", "9", code=2))
    assert "stride 1 in the file, 8 in this run" in err
    err = one_line_error(cli("eval-fvd", stats, videos["FAKE"], "--protocol", "fvd2048_16f", "--detector", "pytorch",
                             "-f", "9", "--clip", "first", code=2))
    assert "clip 'random' in the file, 'first' in this run" in err
    err = one_line_error(cli("eval-fvd", stats, videos["FAKE"], "-f", "9", "--resize", "stretch", "--clip", "random",
                             "--real-split", "train", code=2))
    assert "real_split 'all' in the file, 'train' in this run" in err


# ---------------------------------------------------------------- real split


def _tiny(path: Path) -> None:
    write_video(path, flat_video(np.arange(3)))


def test_real_split_on_ucf_and_train_test_layouts(tmp_path):
    ucf = tmp_path / "UCF-101"
    for name in ("v_A_g01_c01.avi", "v_A_g02_c01.avi", "v_B_g01_c01.avi"):
        _tiny(ucf / name.split("_")[1] / name)
    (ucf / "ucfTrainTestlist").mkdir()
    (ucf / "ucfTrainTestlist" / "trainlist01.txt").write_text("A/v_A_g02_c01.avi 1\nB/v_B_g01_c01.avi 2\n")
    (ucf / "ucfTrainTestlist" / "testlist01.txt").write_text("A/v_A_g01_c01.avi\n")
    names = lambda src: sorted(r.path.name for r in src.refs)  # noqa: E731
    assert names(real_videos(ucf, "train")) == ["v_A_g02_c01.avi", "v_B_g01_c01.avi"]
    assert names(real_videos(ucf, "test")) == ["v_A_g01_c01.avi"]
    assert len(real_videos(ucf, "convention").refs) == 3 and real_videos(ucf, "convention").split == "all"
    sky = tmp_path / "sky"
    for split, n in (("train", 2), ("test", 1)):
        for i in range(n):
            write_video(sky / split / f"vid{i}" / "clip0", flat_video(np.arange(3)), fmt="frames")
    assert len(real_videos(sky, "convention").refs) == 2 and real_videos(sky, "convention").split == "train"
    assert len(real_videos(sky, "test").refs) == 1 and len(real_videos(sky, "all").refs) == 3
    with pytest.raises(BadInputError, match="needs a UCF-101 root"):
        real_videos(sky / "train", "train")
    assert real_videos(sky / "train", "convention").split == "all"  # a plain folder: taken whole


# ---------------------------------------------------------------- FVD during training


@pytest.fixture(scope="module")
def ae(cli, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ae")
    cli("train-ae", "--out", out, "--steps", 2, "--batch-size", 2, *SMALL)
    return out


def logged_fvd(run: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["split"] == "test" for r in records if "fvd" in r)
    return [(r["step"], r["fvd"]) for r in records if "fvd" in r]


DM = ("--steps", 4, "--batch-size", 4, "--set", "unet.base_channels=32", "--set", "sample.steps=2",
      "--set", "diffusion_train.sample_every=100")


def test_fvd_during_training_is_logged(cli, ae, tmp_path, monkeypatch):
    monkeypatch.setattr("pvdm_core.evaluation.fvd.tracking.load_i3d", lambda *a, **k: (frame_ids, "standin"))
    rng = np.random.default_rng(0)
    real = FeatureStats({**make_protocol(9, weights_sha256="standin"), "stride": 1}).update(rng.integers(0, 255, (8, 9)))
    real.save(tmp_path / "real.stats.npz")
    cli("train-diffusion", "--ae", ae, "--out", tmp_path / "dm", *DM, "--set", "diffusion_train.fvd_every=2",
        "--set", f"diffusion_train.fvd_stats={tmp_path / 'real.stats.npz'}", "--set", "diffusion_train.fvd_videos=3")
    fvds = logged_fvd(tmp_path / "dm")
    assert [step for step, _ in fvds] == [0, 2, 4] and all(np.isfinite(v) and v > 0 for _, v in fvds)


def test_fvd_during_training_needs_a_matching_statistics_file(cli, ae, tmp_path):
    err = one_line_error(cli("train-diffusion", "--ae", ae, "--out", tmp_path / "dm", *DM,
                             "--set", "diffusion_train.fvd_every=2", code=2))
    assert "needs both diffusion_train.fvd_every" in err
    err = one_line_error(cli("train-diffusion", "--ae", ae, "--out", tmp_path / "dm", *DM, "--set",
                             "diffusion_train.fvd_every=2", "--set", f"diffusion_train.fvd_stats={tmp_path}", code=2))
    assert "not an FVD statistics file" in err
    err = one_line_error(cli("train-diffusion", "--ae", ae, "--out", tmp_path / "dm", *DM, "--set",
                             "diffusion_train.fvd_every=2", "--set", f"diffusion_train.fvd_stats={tmp_path}",
                             "--set", "diffusion_train.fvd_videos=1", code=2))
    assert "fvd_videos must be at least 2" in err


# ---------------------------------------------------------------- the real detector (slow)


@pytest.mark.slow
def test_runs_and_training_fvd_with_the_real_i3d(cli, ae, tmp_path, i3d_weights, monkeypatch):
    monkeypatch.setenv("PVDM_I3D_WEIGHTS", str(i3d_weights))
    write_synthetic_videos(tmp_path / "real", 4, 9, 16, first_seed=0, fmt="npz")
    write_synthetic_videos(tmp_path / "fake", 4, 9, 16, first_seed=50, fmt="npz")
    res = result_json(cli("eval-fvd", tmp_path / "real", tmp_path / "fake", "--protocol", "tf_fvd16", "-f", "9", "-n", "2",
                          "--runs", "2", "--save-stats-real", tmp_path / "real.stats.npz", "--json"))
    assert res["num_runs"] == 2 and res["fvd"] == pytest.approx(np.mean([r["fvd"] for r in res["runs"]]))
    assert res["bn_eps"] == 1e-3 and res["resize"] == "stretch"
    cli("train-diffusion", "--ae", ae, "--out", tmp_path / "dm", *DM, "--set", "diffusion_train.fvd_every=4",
        "--set", f"diffusion_train.fvd_stats={tmp_path / 'real.stats.npz'}", "--set", "diffusion_train.fvd_videos=2")
    assert [step for step, _ in logged_fvd(tmp_path / "dm")] == [0, 4]
