"""fp16 loss scaling in the training loops: resumable from a run saved without it, and an
overflow skipped as torch's GradScaler skips it (a NaN without scaling still ends the run)."""

import math

import pytest
import torch
from torch import nn

from pvdm_core.base.device import DeviceChoice
from pvdm_core.base.errors import PvdmError
from pvdm_core.training.toolbox import TrainState, check_finite, grad_scaler

CPU_FP16 = DeviceChoice(torch.device("cpu"), "test", torch.float16, needs_grad_scaler=True)
CPU_FP32 = DeviceChoice(torch.device("cpu"), "test", None, needs_grad_scaler=False)


def test_fp16_resume_of_a_run_saved_without_loss_scaling():
    saved = TrainState({}, scaler=grad_scaler(CPU_FP32), model=nn.Linear(2, 2)).state_dict()
    assert saved["scaler"] == {}  # a disabled scaler (CPU, bf16, fp32) saves nothing
    scaler = grad_scaler(CPU_FP16)
    TrainState({}, scaler=scaler, model=nn.Linear(2, 2)).load_state_dict(saved)  # was: RuntimeError
    assert scaler.get_scale() == 2.0**16  # a fresh scale
    resumed = grad_scaler(CPU_FP16)
    scaler.scale(torch.ones(()))  # the scale tensor exists once a loss was scaled
    scaler.update(new_scale=128.0)
    resumed.load_state_dict(scaler.state_dict())
    assert resumed.get_scale() == 128.0  # a saved fp16 scale still comes back


def test_fp16_overflow_is_skipped_nan_without_scaling_ends_the_run(tmp_path):
    scaler = grad_scaler(CPU_FP16)
    check_finite(math.inf, 7, tmp_path, scaler)  # skipped: the scaler halves the scale
    check_finite(math.nan, 7, tmp_path, scaler)
    check_finite(1.0, 7, tmp_path, grad_scaler(CPU_FP32))
    with pytest.raises(PvdmError, match="loss became nan at step 7"):
        check_finite(math.nan, 7, tmp_path, grad_scaler(CPU_FP32))
    with pytest.raises(PvdmError, match="loss became inf"):
        check_finite(math.inf, 7, tmp_path, grad_scaler(CPU_FP32))
    scaler.scale(torch.ones(()))
    scaler.update(new_scale=2.0**-20)  # overflowing whatever the scale: the run ends
    with pytest.raises(PvdmError, match="loss became inf"):
        check_finite(math.inf, 7, tmp_path, scaler)


def test_an_overflowing_step_leaves_the_weights_alone():
    """What "skipped" means: scaler.step does not apply inf gradients and the scale halves."""
    from pvdm_core.training.toolbox import optimizer_step

    model = nn.Linear(2, 1)
    before = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = grad_scaler(CPU_FP16)
    loss = model(torch.ones(1, 2)).sum() * math.inf
    check_finite(float(loss.detach()), 0, None, scaler)
    scaler.scale(loss).backward()
    optimizer_step(opt, scaler)
    scaler.update()
    assert torch.equal(model.weight, before) and scaler.get_scale() == 2.0**15
