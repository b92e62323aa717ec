"""Autoencoder training: PSNR climbs, the GAN phase runs, divergence rolls back."""

import json

import pytest

from helpers import SMALL as BASE
from pvdm_core.config import load_config
from pvdm_core.runs import MetricsLog
from pvdm_core.train_ae import _watch_gan

SMALL = BASE + ["--set", "data.synthetic_train=32"]


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_heldout_psnr_climbs(cli, tmp_path):
    r = cli("train-ae", "--out", tmp_path, "--steps", "80", "--batch-size", "4", *SMALL,
            "--set", "ae_train.eval_every=20", "--set", "ae_train.lr=2e-3", "--json")
    psnr = [m["psnr"] for m in metrics(tmp_path) if m.get("split") == "test"]
    assert len(psnr) == 4
    assert psnr[-1] > psnr[0] + 1.5, psnr  # dB on held-out synthetic clips
    assert json.loads(r.stdout)["test_psnr"] == pytest.approx(psnr[-1])


def test_gan_phase_runs_and_logs(cli, tmp_path):
    cli("train-ae", "--out", tmp_path, "--steps", "4", "--batch-size", "2", *SMALL,
        "--set", "ae_train.disc_start=2", "--set", "ae_train.disc_channels=8",
        "--set", "ae_train.eval_every=2", "--set", "ae_train.log_every=1")
    logged = metrics(tmp_path)
    assert "d_loss" not in logged[0] and "d_loss" in logged[-2] and "g_adv" in logged[-2]
    assert (tmp_path / "good.pt").is_file()


def test_divergence_rolls_back_then_stops(tmp_path):
    tc = load_config("tiny").ae_train
    gan = {"active": True, "lr_scale": 1.0, "rollbacks": 0, "history": []}
    saved, restored = [], []
    log = MetricsLog(tmp_path / "m.jsonl")

    def checkpoint(name):
        saved.append(name)

    import pvdm_core.train_ae as ta

    ta.load_checkpoint = lambda path, kind: {"step": 100}  # the good checkpoint
    _watch_gan(gan, 100, 25.0, tc, tmp_path, log, checkpoint, lambda s: restored.append(s) or s["step"])
    _watch_gan(gan, 200, 24.0, tc, tmp_path, log, checkpoint, lambda s: restored.append(s) or s["step"])
    assert saved == ["good.pt", "good.pt"] and not restored  # within tolerance: fine
    _watch_gan(gan, 300, 20.0, tc, tmp_path, log, checkpoint, lambda s: restored.append(s) or s["step"])
    assert len(restored) == 1 and gan["lr_scale"] == 0.5 and gan["active"]
    _watch_gan(gan, 350, 19.0, tc, tmp_path, log, checkpoint, lambda s: restored.append(s) or s["step"])
    assert len(restored) == 2 and not gan["active"]
    events = [m for m in log.read() if m.get("event") == "gan_divergence"]
    assert len(events) == 2 and events[-1]["action"] == "GAN phase stopped"


def test_nan_loss_is_a_clear_failure(cli, tmp_path):
    r = cli("train-ae", "--out", tmp_path, "--steps", "3", "--batch-size", "2", *SMALL,
            "--set", "ae_train.lr=1e30", "--set", "ae_train.grad_clip=0", code=1)
    assert "loss became" in r.stderr and "Traceback" not in r.stderr


def test_bad_batch_unknown_key_and_compile_backend(cli, tmp_path):
    r = cli("train-ae", "--out", tmp_path, "--batch-size", "3", "--set", "ae_train.grad_accum=2", code=2)
    assert "not divisible" in r.stderr
    r = cli("train-ae", "--out", tmp_path, "--set", "ae_train.dsc_start=2", code=2)
    assert "closest valid key: disc_start" in r.stderr
    r = cli("train-ae", "--out", tmp_path, *SMALL, "--set", "run.compile=turbo", code=2)  # equality: test_resume
    assert "not a torch.compile backend" in r.stderr
