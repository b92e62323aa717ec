"""The dummy model the sampler tests run (test_diffusion.py, test_samplers_golden.py), as the
golden numbers were made: eps = 0.1 x + 0.01 t / 1000, from x_T = torch.manual_seed(0);
torch.randn(2, 4, 3, 3), on the linear schedule 0.0015..0.0195 of 1000 steps."""

from __future__ import annotations

import math

import numpy as np
import torch

from pvdm_core.diffusion.planes import plane_map
from pvdm_core.diffusion.process import NoiseSchedule

SHAPE = (2, 4, 3, 3)
SCHEDULE = NoiseSchedule.linear(1000, 0.0015, 0.0195)


def dummy_model(x, t):
    return plane_map(lambda p: 0.1 * p + 0.01 * t.to(p.dtype).reshape(-1, *[1] * (p.ndim - 1)) / 1000, x)


def x_T():
    torch.manual_seed(0)
    return torch.randn(SHAPE)


def np_alpha_bar():
    """The schedule's cumulative alphas in float64 NumPy, derived independently of NoiseSchedule."""
    betas = np.linspace(math.sqrt(0.0015), math.sqrt(0.0195), 1000, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)
