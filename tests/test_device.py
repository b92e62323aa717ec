import os

import pytest
import torch

from pvdm_core.base import device as dev
from pvdm_core.base.errors import BadInputError


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "FakeGPU")
    assert dev.pick_device(None)[0].type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.pick_device("auto")[0].type == "mps"
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    device, reason = dev.pick_device(None)
    assert device.type == "cpu" and "no CUDA" in reason


def test_override_and_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device("cpu") == (torch.device("cpu"), "chosen with --device")
    with pytest.raises(BadInputError, match="no CUDA"):
        dev.pick_device("cuda")
    with pytest.raises(BadInputError, match="unknown device"):
        dev.pick_device("gpu7")


def test_amp_dtype_per_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert dev.amp_dtype_for(cpu) is None
    assert dev.amp_dtype_for(cpu, "bf16") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: not asked
    for capability, dtype in (((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16), ((8, 6), torch.bfloat16),
                              ((7, 0), torch.float16), ((7, 5), torch.float16), ((6, 1), torch.float16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=capability: c)
        assert dev.amp_dtype_for(cuda) is dtype, capability  # V100 7.0, T4 7.5: fp16 with a scaler
    assert dev.amp_dtype_for(cuda, "off") is None  # a typo (run.amp=fp8) is refused at load: test_config


def test_cpu_choice_has_no_scaler():
    choice = dev.choose_device("cpu")
    assert choice.amp_dtype is None and not choice.needs_grad_scaler


def test_cuda_index_refused_under_torchrun(monkeypatch):
    """--device cuda:N with several processes would put them all on GPU N ("Duplicate GPU")."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(BadInputError, match="torchrun.*use --device cuda"):
        dev.choose_device("cuda:1")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    assert dev.choose_device("cuda:1").device == torch.device("cuda", 1)  # one process: fine


def test_tests_run_on_the_cpu_unless_marked_gpu():
    """conftest hides CUDA from unmarked tests, so on a GPU machine `auto` is the CPU here."""
    assert dev.choose_device(None).device.type == "cpu"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
