"""The I3D detector (`metrics.i3d_weights.load_i3d`) as eval-fvd runs it: true fp32 unless AMP is asked for.

TF32 matmuls and convolutions (Ampere and later) would perturb the logits, so TF32 is switched
off around the network only (resizing stays fp32 either way) and restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch


@contextlib.contextmanager
def precision(device: torch.device, amp: bool) -> Iterator[None]:
    """bf16 autocast on CUDA with amp; otherwise true fp32 (TF32 off while extracting)."""
    if device.type != "cuda":
        yield
        return
    if amp:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def with_precision(fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                   amp: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """`fn` under `precision`."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with precision(device, amp):
            return fn(x)

    return run
