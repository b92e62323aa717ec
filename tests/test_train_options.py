"""Training options: lr_schedule (linear warm-up, then constant or cosine down to min_lr_ratio) of
both loops, and ae_train.mse_weight (a squared-error pixel term beside L1)."""

import json

import pytest

from pvdm_core.base.config import load_config
from helpers import SMALL
from pvdm_core.training.toolbox import lr_factor


def test_warmup_then_cosine():
    f = lambda k: lr_factor(k, 110, "cosine", 10, 0.1)
    assert [f(k) for k in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])  # linear warm-up to 1
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55)  # half-way: (1 + 0.1) / 2
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)  # floor after the last step
    assert all(f(k) >= f(k + 1) for k in range(10, 120))
    assert lr_factor(50, 100, "constant", 0, 0.1) == 1.0 and lr_factor(3, 100, "constant", 10, 0.1) == 0.4
    assert lr_factor(5, 5, "cosine", 10, 0.0) == pytest.approx(0.6)  # warm-up longer than the run


def test_reference_presets_keep_a_constant_lr_and_l1():
    for name in ("sky128", "sky256", "ucf128", "ucf256", "tiny"):
        cfg = load_config(name)
        for tc in (cfg.ae_train, cfg.diffusion_train):
            assert tc.lr_schedule == "constant" and tc.warmup_steps == 0, name
        assert cfg.ae_train.mse_weight == 0.0, name


def test_diffusion_follows_the_lr_schedule(cli, tmp_path):
    cli("train-ae", "--out", tmp_path / "ae", "--steps", "1", "--batch-size", "2", *SMALL)
    cli("train-diffusion", "--ae", tmp_path / "ae", "--out", tmp_path / "dm", "--steps", "4", "--batch-size", "2",
        "--set", "unet.base_channels=32", "--set", "diffusion_train.sample_every=1000",
        "--set", "diffusion_train.log_every=1", "--set", "diffusion_train.lr=1e-3",
        "--set", "diffusion_train.lr_schedule=cosine", "--set", "diffusion_train.warmup_steps=2",
        "--set", "diffusion_train.min_lr_ratio=0.2")
    logs = [json.loads(line) for line in (tmp_path / "dm" / "metrics.jsonl").read_text().splitlines()]
    lrs = [m["lr"] for m in logs if "lr" in m]
    # warm-up 0.5, 1.0, then the cosine of steps 2 and 3 of 4: 1.0 and (1 + 0.2) / 2
    assert lrs == pytest.approx([5e-4, 1e-3, 1e-3, 6e-4])


def test_train_ae_refuses_an_unknown_schedule(cli, tmp_path):
    r = cli("train-ae", "--out", tmp_path, "--steps", "1", "--set", "ae_train.lr_schedule=step", code=2)
    assert "ae_train.lr_schedule must be one of constant, cosine, got 'step'" in r.stderr
    assert not (tmp_path / "latest").exists()


def test_mse_term_is_trained_and_logged(cli, tmp_path):
    cli("train-ae", "--out", tmp_path, "--steps", "2", "--batch-size", "2", *SMALL,
        "--set", "ae_train.l1_weight=0", "--set", "ae_train.mse_weight=1",
        "--set", "ae_train.lr_schedule=cosine", "--set", "ae_train.warmup_steps=1", "--set", "ae_train.log_every=1")
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in logs if "mse" in m]
    assert len(steps) == 2 and all(m["loss"] == pytest.approx(m["mse"]) for m in steps)  # L1 weighted 0
