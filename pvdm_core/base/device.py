"""The one device helper: pick CUDA > MPS > CPU, choose the AMP dtype, say why; compile a module
for it (run.compile, --compile)."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from pvdm_core.base import distributed
from pvdm_core.base.config import Amp
from pvdm_core.base.errors import BadInputError


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    reason: str
    amp_dtype: torch.dtype | None  # None = full fp32
    needs_grad_scaler: bool  # fp16 autocast needs loss scaling; bf16 does not

    @property
    def precision(self) -> str:
        """The autocast precision by name, for results (--json): fp32, bf16 or fp16."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_device(requested: str | None = None) -> tuple[torch.device, str]:
    """Resolve `--device` (None/'auto' = CUDA, else MPS, else CPU) into a device and a reason."""
    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda"), f"CUDA available ({torch.cuda.get_device_name(0)})"
        if _mps_available():
            return torch.device("mps"), "Apple MPS available, no CUDA"
        return torch.device("cpu"), "no CUDA or MPS device found"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise BadInputError(f"unknown device {requested!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"--device {requested} asked for CUDA, but torch sees no CUDA device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BadInputError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not _mps_available():
        raise BadInputError(f"--device {requested} asked for MPS, which is not available here")
    return device, "chosen with --device"


def amp_dtype_for(device: torch.device, amp: Amp = "auto") -> torch.dtype | None:
    """auto: bf16 on GPUs with bf16 units (compute capability 8.0 on: A100, RTX 30xx, H100),
    fp16 (with loss scaling) on older CUDA GPUs, off on CPU and MPS (run.amp is checked when the
    config loads). Not torch.cuda.is_bf16_supported(), which counts emulation (V100, T4, RTX 20xx):
    slow there, and attention falls back to its math kernel (L x L memory)."""
    if amp == "auto":
        if device.type == "cuda":
            major, _ = torch.cuda.get_device_capability(device)
            return torch.bfloat16 if major >= 8 else torch.float16
        return None
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def choose_device(requested: str | None = None, amp: Amp = "auto") -> DeviceChoice:
    device, reason = pick_device(requested)
    if device.type == "cuda" and device.index is not None and distributed.world_size() > 1:
        raise BadInputError(f"--device {requested} under torchrun (WORLD_SIZE={distributed.world_size()}) would put "
                            f"every process on GPU {device.index}; use --device cuda (process k takes GPU LOCAL_RANK k) "
                            f"and choose the GPUs with CUDA_VISIBLE_DEVICES")
    if device.type == "cuda" and device.index is None and distributed.world_size() > 1:
        device = distributed.device_for_rank(device)  # under torchrun: GPU LOCAL_RANK
        reason += f", process {distributed.rank()} on GPU {device.index}"
    if device.type == "cuda":
        # TF32 matmuls: ~same accuracy for training, several times the fp32 throughput.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return with_amp(DeviceChoice(device, reason, None, False), amp)


def with_amp(choice: DeviceChoice, amp: Amp) -> DeviceChoice:
    """`choice` with the autocast precision that run.amp (or --amp) asks for on its device; fp16
    on CUDA trains with loss scaling."""
    dtype = amp_dtype_for(choice.device, amp)
    scaled = dtype == torch.float16 and choice.device.type == "cuda"
    return dataclasses.replace(choice, amp_dtype=dtype, needs_grad_scaler=scaled)


def autocast(choice: DeviceChoice) -> contextlib.AbstractContextManager:
    if choice.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=choice.device.type, dtype=choice.amp_dtype)


def compiled(module: nn.Module, backend: str) -> nn.Module:
    """`torch.compile(module, backend=backend)`, or the module itself when backend is ""."""
    if not backend:
        return module
    import torch._dynamo  # not loaded by `import torch`; only needed here

    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise BadInputError(f"run.compile={backend!r} is not a torch.compile backend; "
                            f"choose one of {', '.join(torch._dynamo.list_backends())} (or '' for none)")
    return torch.compile(module, backend=backend)
