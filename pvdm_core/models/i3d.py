"""Inception-I3D for Kinetics-400 (Carreira & Zisserman, CVPR 2017), the FVD feature network.

The module layout reproduces the widely used PyTorch port (piergiaj/pytorch-i3d, as used by
VideoGPT, DIGAN, PVDM and StyleGAN-V through `i3d_pretrained_400.pt`) so that file loads
with `strict=True`: 287 tensors, 344 with the BatchNorm counters, 12.7M parameters.

Forward: (B, 3, T, 224, 224) in [-1, 1], T >= 9 ->
the 400 logits averaged over time, (B, 400). Padding is TensorFlow's "SAME", computed from
each input's size, as in DeepMind's original network. Inference only: build it, load the
weights, call `.eval()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pvdm_core.base.errors import BadInputError

NUM_CLASSES = 400
MIN_FRAMES = 9  # T=8 shrinks to one step before the final 2-frame average pool
SIZE = 224  # the final 7x7 average pool must see exactly one 7x7 map

# Mixed blocks: (name, input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels).
# A stride-2 max pool sits before Mixed_4b (3x3x3) and before Mixed_5b (2x2x2).
MIXED = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) for one dimension; the extra goes after."""
    pad = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return pad // 2, pad - pad // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt, ph, pw = (same_padding(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    if pt == ph == pw == (0, 0):
        return x
    # Zero padding: for the max pools this equals TF's -inf padding, their inputs are >= 0 (ReLU).
    return F.pad(x, (*pw, *ph, *pt))


class MaxPool3dSame(nn.Module):
    """3-D max pool with "SAME" padding (no parameters)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d ("SAME" padding) -> BatchNorm3d -> ReLU; state names `conv3d.*`, `bn.*`."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), *,
                 bn_eps: float = 1e-5, batch_norm: bool = True, bias: bool = False, relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=bn_eps, momentum=0.001) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1."""

    def __init__(self, cin: int, c: tuple[int, ...], bn_eps: float):
        super().__init__()
        self.b0 = Unit3D(cin, c[0], bn_eps=bn_eps)
        self.b1a = Unit3D(cin, c[1], bn_eps=bn_eps)
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(cin, c[3], bn_eps=bn_eps)
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5], bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


class InceptionI3d(nn.Module):
    """Inception-v1 I3D, Kinetics-400 head; returns time-averaged logits (B, 400).

    bn_eps: 1e-5 as in the common PyTorch port (default, matches `i3d_pretrained_400.pt`
    users); 1e-3 as in DeepMind's TensorFlow network. Logits differ by ~0.1% relative.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, bn_eps: float = 1e-5):
        super().__init__()
        self.bn_eps = bn_eps
        # Module order is the forward order; attribute names are the state-dict names.
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2), bn_eps=bn_eps)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=bn_eps)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name, cin, channels in MIXED:
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            self.add_module(name, InceptionModule(cin, channels, bn_eps))
        self.logits = Unit3D(1024, num_classes, bn_eps=bn_eps, batch_norm=False, bias=True, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_i3d_input(x)
        for name, module in self.named_children():
            if name == "logits":
                break
            x = module(x)
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)  # VALID: (B, 1024, T', 1, 1)
        x = self.logits(x)  # dropout is the identity at inference
        return x.flatten(2).mean(dim=2)  # (B, 400, T') -> averaged over time


def check_i3d_input(x: torch.Tensor) -> None:
    """Raise BadInputError unless x is (B, 3, T>=9, 224, 224)."""
    if x.ndim != 5 or x.shape[1] != 3:
        raise BadInputError(f"I3D expects videos shaped (B, 3, T, 224, 224); got {tuple(x.shape)}")
    t, h, w = x.shape[2:]
    if t < MIN_FRAMES:
        raise BadInputError(
            f"I3D needs at least {MIN_FRAMES} frames per clip (its pooling shrinks time 8x before a "
            f"2-frame window); got {t}. Use clips of 16 frames (the FVD protocol) or more."
        )
    if (h, w) != (SIZE, SIZE):
        raise BadInputError(f"I3D expects {SIZE}x{SIZE} frames (resize with preprocess_for_i3d); got {h}x{w}")
