"""ae_train options: lr_schedule (linear warm-up, then constant or cosine down to min_lr_ratio) and
mse_weight (a squared-error pixel term beside L1)."""

import json

import pytest
from typer.testing import CliRunner

import pvdm_cli.commands  # noqa: F401
from pvdm_cli.main import app
from pvdm_core.config import load_config
from pvdm_core.errors import BadInputError
from helpers import SMALL
from pvdm_core.training import lr_factor


def test_warmup_then_cosine():
    f = lambda k: lr_factor(k, 110, "cosine", 10, 0.1)
    assert [f(k) for k in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])  # linear warm-up to 1
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55)  # half-way: (1 + 0.1) / 2
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)  # floor after the last step
    assert all(f(k) >= f(k + 1) for k in range(10, 120))
    assert lr_factor(50, 100, "constant", 0, 0.1) == 1.0 and lr_factor(3, 100, "constant", 10, 0.1) == 0.4
    assert lr_factor(5, 5, "cosine", 10, 0.0) == pytest.approx(0.6)  # warm-up longer than the run
    with pytest.raises(BadInputError, match="unknown lr schedule 'linear'"):
        lr_factor(0, 10, "linear", 0, 0.1)


def test_reference_presets_keep_a_constant_lr_and_l1():
    for name in ("sky128", "sky256", "ucf128", "ucf256", "tiny"):
        tc = load_config(name).ae_train
        assert tc.lr_schedule == "constant" and tc.warmup_steps == 0, name
        assert tc.mse_weight == 0.0, name


def test_train_ae_refuses_an_unknown_schedule(tmp_path):
    r = CliRunner().invoke(app, ["train-ae", "--out", str(tmp_path), "--steps", "1", "--set", "ae_train.lr_schedule=step"])
    assert r.exit_code == 2 and "unknown lr schedule 'step'" in r.stderr


def test_mse_term_is_trained_and_logged(tmp_path):
    r = CliRunner().invoke(app, ["train-ae", "--out", str(tmp_path), "--steps", "2", "--batch-size", "2", *SMALL,
                                 "--set", "ae_train.l1_weight=0", "--set", "ae_train.mse_weight=1",
                                 "--set", "ae_train.lr_schedule=cosine", "--set", "ae_train.warmup_steps=1",
                                 "--set", "ae_train.log_every=1"])
    assert r.exit_code == 0, r.stderr
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in logs if "mse" in m]
    assert len(steps) == 2 and all(m["loss"] == pytest.approx(m["mse"]) for m in steps)  # L1 weighted 0
