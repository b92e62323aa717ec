"""Training equivalences on CPU (deterministic): stop-and-resume equals uninterrupted, and a
torch.compile'd forward trains the same weights as eager, for both training loops."""

import pytest
import torch

from helpers import SMALL as BASE
from pvdm_core.io.checkpoint import load_checkpoint

SMALL = BASE + ["--set", "data.synthetic_test=2", "--set", "ae_train.eval_every=100", "--batch-size", "4"]


def same_weights(a, b):
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


def test_autoencoder_resume_equals_uninterrupted(cli, tmp_path):
    cli("train-ae", "--out", tmp_path / "full", "--steps", 6, *SMALL)
    cli("train-ae", "--out", tmp_path / "part", "--steps", 3, *SMALL)  # "interrupted" after 3 steps
    # resumed with gradient checkpointing on (e.g. to fit another GPU): accepted, same weights
    cli("train-ae", "--out", tmp_path / "part", "--steps", 6, "--resume", *SMALL,
        "--set", "ae_train.grad_checkpoint=true")
    same_weights(tmp_path / "full", tmp_path / "part")


def test_diffusion_resume_equals_uninterrupted(cli, tmp_path):
    cli("train-ae", "--out", tmp_path / "ae", "--steps", 1, *SMALL)
    dm = ["--ae", tmp_path / "ae", "--batch-size", 4, "--set", "unet.base_channels=32",
          "--set", "diffusion_train.sample_every=1000", "--set", "diffusion_train.lr_schedule=cosine",
          "--set", "diffusion_train.warmup_steps=2"]  # the resumed run picks the schedule up at step 2
    cli("train-diffusion", "--out", tmp_path / "full", "--steps", 4, *dm)
    cli("train-diffusion", "--out", tmp_path / "part", "--steps", 2, *dm)
    # the same command resumes, here with gradient checkpointing turned on: accepted, same weights
    cli("train-diffusion", "--out", tmp_path / "part", "--steps", 4, *dm, "--set", "unet.grad_checkpoint=true")
    same_weights(tmp_path / "full", tmp_path / "part")
    assert load_checkpoint(tmp_path / "part")["step"] == 4


@pytest.mark.slow
def test_compiled_training_equals_eager(cli, tmp_path):
    # The "eager" dynamo backend traces the graph (the path inductor takes) without C++ builds.
    cli("train-ae", "--out", tmp_path / "ae", "--steps", 2, *SMALL)
    cli("train-ae", "--out", tmp_path / "ae_c", "--steps", 2, *SMALL, "--set", "run.compile=eager")
    same_weights(tmp_path / "ae", tmp_path / "ae_c")
    dm = ["--ae", tmp_path / "ae", "--steps", 2, "--batch-size", 4, "--set", "unet.base_channels=32",
          "--set", "diffusion_train.sample_every=1000"]
    cli("train-diffusion", "--out", tmp_path / "dm", *dm)
    cli("train-diffusion", "--out", tmp_path / "dm_c", *dm, "--set", "run.compile=eager")
    same_weights(tmp_path / "dm", tmp_path / "dm_c")
    r = cli("train-diffusion", "--out", tmp_path / "dm_x", *dm, "--set", "run.compile=turbo", code=2)
    assert "not a torch.compile backend" in r.stderr
