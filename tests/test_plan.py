"""`pvdm plan`: the fake-tensor step cost against a measured peak, the search for a setting that
fits, the CLI's JSON and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pvdm_core.base.config import load_config
from pvdm_core.training.memory_plan import GPU, GiB, StagePlanner, plan_training
from pvdm_core.training.step_cost import LiveBytes, StepCost, fake_step_cost

ROOT = Path(__file__).resolve().parents[1]


def test_live_bytes_counts_storage_once_until_freed():
    with LiveBytes() as live:
        a = torch.zeros(1000)  # 4000 bytes -> 4096 in 512-byte blocks
        b = a.view(10, 100)  # a view: no new storage
        assert live.live == 4096 and b.numel() == 1000
        c = a * 2
        assert live.peak == 8192
        del c
        assert live.live == 4096 and live.peak == 8192


@pytest.mark.slow
def test_fake_step_of_tiny_counts_models_and_adamw_state(one_thread):
    cfg = load_config("tiny")
    cost = fake_step_cost(cfg, "diffusion", 2, None, count_flops=True)
    unet_bytes = cost.ema_bytes  # the EMA copy: one fp32 copy of the weights
    # weights, gradients, two AdamW moments and the EMA copy, plus activations
    assert cost.peak_bytes > 5 * unet_bytes and cost.flops > 0
    bigger = fake_step_cost(cfg, "diffusion", 8, None)
    assert bigger.peak_bytes > cost.peak_bytes  # activations grow with the micro-batch


@pytest.mark.slow
def test_fake_estimate_within_10_percent_of_measured_peak():
    """The planner's prediction against the resident-set rise of the same real step in a fresh
    process (benchmarks/plan_check.py's row): tiny diffusion at micro-batch 64, fp32."""
    row = json.dumps(["tiny", [], "diffusion", 64, "off"])
    env = {"OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "benchmarks/plan_check.py", "--row", row], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.9 < r["measured"] / r["predicted"] < 1.1, r


class Costs(StagePlanner):
    """A planner whose step cost is a line: 1 GiB of weights and state plus 1 GiB per clip
    without checkpointing, 0.25 GiB per clip with it."""

    def cost(self, micro: int, checkpoint: bool) -> StepCost:
        per_clip = 0.25 if checkpoint else 1.0
        return StepCost(int((1 + per_clip * micro) * GiB), micro * 10**12)


@pytest.mark.parametrize("memory, micro, accum, ckpt", [
    (40, 16, 1, False),  # the whole batch fits: no accumulation
    (12, 8, 2, False),  # 1 + 8 = 9 GiB <= 12 x 0.85
    (5, 8, 2, True),  # without checkpointing only 2 fit (3 GiB <= 4.25), with it 8 (3 GiB)
    (3, 4, 4, True),  # without checkpointing 1, with it 4 (2 GiB <= 2.55)
])
def test_planner_picks_the_largest_micro_batch_that_fits(memory, micro, accum, ckpt):
    gpu = GPU(memory_gib=memory, tflops=100, utilization=0.5)
    got = Costs(load_config("tiny"), "diffusion", gpu).plan()
    s = got["setting"]
    assert (s["micro_batch"], s["grad_accum"], s["grad_checkpoint"]) == (micro, accum, ckpt), got
    assert s["step_tflop"] == pytest.approx(16.0) and s["step_s"] == pytest.approx(16 / 50)
    assert got["set"] == [f"diffusion_train.grad_accum={accum}", f"unet.grad_checkpoint={str(ckpt).lower()}"]


def test_planner_says_when_nothing_fits_and_splits_over_gpus():
    tiny = load_config("tiny")
    none = Costs(tiny, "diffusion", GPU(memory_gib=1)).plan()
    assert not none["fits"] and none["setting"] is None and none["needs_gib_at_micro_batch_1"] == 1.25
    four = Costs(tiny, "ae", GPU(memory_gib=40, count=4)).plan()
    assert four["per_gpu_batch"] == 2 and four["setting"]["micro_batch"] == 2


def test_plan_json_shape(cli):
    out = cli.json("plan", "--preset", "tiny", "--stage", "diffusion", "--set", "diffusion_train.batch_size=4",
                   "--gpu-memory", "8", "--gpu-tflops", "100", "--utilization", "0.5")
    assert out["preset"] == "tiny" and out["gpu_memory_gib"] == 8 and out["budget_gib"] == pytest.approx(6.8)
    assert out["precision"] == "bfloat16 autocast (run.amp=auto)"
    (stage,) = out["stages"]
    assert stage["stage"] == "diffusion" and stage["fits"] and stage["global_batch"] == 4
    s = stage["setting"]
    assert (s["micro_batch"], s["grad_accum"], s["grad_checkpoint"]) == (4, 1, False)
    assert 0 < s["peak_gib"] < 1 and s["step_tflop"] > 0 and s["step_s"] > 0


@pytest.mark.parametrize("args, message", [
    (["--gpu-memory", "0"], "GPU memory and TFLOPS must be positive"),
    (["--stage", "vae"], "--stage must be one of ae, diffusion"),
    (["--gpus", "3"], "global batch 8 is not divisible by 3 GPUs"),
    (["--utilization", "2"], "utilization must be in (0, 1]"),
    (["--set", "ae_train.batch_sise=4"], "unknown config key ae_train.batch_sise"),
])
def test_plan_bad_input_exits_2_with_one_line(cli, args, message):
    r = cli("plan", "--preset", "tiny", *args, code=2)
    assert message in r.stderr and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["ucf256", "ucf128"])
def test_reference_presets_use_the_plan_for_a_24_gib_card(preset):
    """The presets' accumulation and checkpointing are what `pvdm plan` gives for 24 GiB (the
    sky presets have the same models and batches)."""
    cfg = load_config(preset)
    for stage in plan_training(cfg, GPU())["stages"]:
        tc = cfg.ae_train if stage["stage"] == "ae" else cfg.diffusion_train
        ckpt = cfg.ae_train.grad_checkpoint if stage["stage"] == "ae" else cfg.unet.grad_checkpoint
        assert stage["fits"] and (tc.grad_accum, ckpt) == (stage["setting"]["grad_accum"],
                                                           stage["setting"]["grad_checkpoint"]), stage
