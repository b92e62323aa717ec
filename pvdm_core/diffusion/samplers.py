"""Samplers for the diffusion of `process.py`: DDPM, DDIM and DPM-Solver++(2M), their
per-step updates and timestep grids.

Samplers are pure functions with one signature (k-diffusion style):

    sample_xxx(model_fn, x_T, schedule, [steps, eta,] generator=None, callback=None, x0_bound=1.0)

`model_fn(x, t) -> eps` predicts the noise of planes x at timesteps t (LongTensor (B,));
conditioning is bound by the caller in a closure, one network evaluation per step.
`callback({"i", "t", "x", "x0"})` runs after every step. All randomness comes from
`generator` (drawn on the generator's device, then moved), so CPU results are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Union, get_args

import numpy as np
import torch
from torch import Tensor

from pvdm_core.base.config import Sampler
from pvdm_core.base.errors import BadInputError
from pvdm_core.diffusion.planes import FlatNoise, Noise, Planes, plane_list, plane_map, plane_randn_like
from pvdm_core.diffusion.process import NoiseSchedule

ModelFn = Callable[[Any, Tensor], Any]  # (planes x_t, t (B,)) -> planes eps
Callback = Callable[[dict], None]


# ---------------------------------------------------------------------------------------------
# Sampling: per-step updates
# ---------------------------------------------------------------------------------------------


def _timestep_vector(t: int, x: Planes) -> Tensor:
    """t for every batch row of x: (B,) long, on x's device."""
    first = plane_list(x)[0]
    return torch.full((first.shape[0],), t, dtype=torch.long, device=first.device)


X0Bound = Union[float, Sequence[float], None]  # |x_0| limit: one for all planes, one per plane, or none


def predict_x0(x_t: Planes, eps: Planes, alpha_bar_t: float, x0_bound: X0Bound = 1.0) -> Planes:
    """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (DDPM eq. 4 solved for x_0),
    clamped to [-b, b]: b = 1 is the range of tanh latents; with latents scaled by 1/std, b = 1/std
    per plane (see `scale_planes`); None does not clamp."""
    a, s = math.sqrt(alpha_bar_t), math.sqrt(1.0 - alpha_bar_t)
    bounds = tuple(x0_bound) if isinstance(x0_bound, Sequence) else (x0_bound,) * len(plane_list(x_t))

    def f(x: Tensor, e: Tensor, b: float | None) -> Tensor:
        x0 = (x - s * e) / a
        return x0 if b is None else x0.clamp(-b, b)

    return f(x_t, eps, bounds[0]) if isinstance(x_t, Tensor) else plane_map(f, x_t, eps, bounds)


def ddpm_step(
    eps: Planes,
    x_t: Planes,
    t: int,
    schedule: NoiseSchedule,
    generator: Noise = None,
    x0_bound: X0Bound = 1.0,
) -> tuple[Planes, Planes]:
    """One ancestral step x_t -> x_{t-1} of DDPM (Ho et al. 2020, Algorithm 2 via eqs. 6-7).

    Returns (x_{t-1}, predicted x_0). Uses the "fixed small" variance beta~_t and draws the
    noise z after computing the mean, one randn per plane (none at t = 0), like diffusers'
    DDPMScheduler.
    """
    # 1. alphas, betas
    ab_t, ab_prev = schedule.alpha_bar(t), schedule.alpha_bar(t - 1)
    alpha_t = ab_t / ab_prev
    beta_t = 1.0 - alpha_t
    # 2. predicted x_0 (eq. 4 inverted), clamped
    x0 = predict_x0(x_t, eps, ab_t, x0_bound)
    # 3. posterior mean mu~_t(x_t, x_0) (eq. 7)
    c_x0 = math.sqrt(ab_prev) * beta_t / (1.0 - ab_t)
    c_xt = math.sqrt(alpha_t) * (1.0 - ab_prev) / (1.0 - ab_t)
    mean = plane_map(lambda a, b: c_x0 * a + c_xt * b, x0, x_t)
    if t == 0:
        if isinstance(generator, FlatNoise):
            generator.like(x_t)  # drawn and multiplied by zero in the release: keeps its stream
        return mean, x0
    # 4. posterior variance beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t (eq. 7), "fixed small"
    sigma = math.sqrt(max((1.0 - ab_prev) / (1.0 - ab_t) * beta_t, 1e-20))
    # 5. x_{t-1} = mu~ + sigma z
    z = plane_randn_like(x_t, generator)
    return plane_map(lambda m, n: m + sigma * n, mean, z), x0


def ddim_step(
    eps: Planes,
    x_t: Planes,
    t: int,
    t_prev: int,
    schedule: NoiseSchedule,
    eta: float,
    generator: Noise = None,
    x0_bound: X0Bound = 1.0,
) -> tuple[Planes, Planes]:
    """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, eq. 12); returns (x_{t_prev}, x_0).

        x_prev = sqrt(alpha_bar_prev) x_0 + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z
        sigma  = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)  (eq. 16)

    eps is the raw network output (not re-derived from the clamped x_0), as in the reference and
    diffusers. t_prev < 0 means alpha_bar_prev = 1: the step returns x_0. For eta > 0, z is drawn
    after the deterministic part, one randn per plane.
    """
    # 1. alphas
    ab_t, ab_prev = schedule.alpha_bar(t), schedule.alpha_bar(t_prev)
    # 2. predicted x_0, clamped
    x0 = predict_x0(x_t, eps, ab_t, x0_bound)
    if t_prev < 0:
        return x0, x0
    # 3. sigma_t(eta) (eq. 16)
    sigma = eta * math.sqrt((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev))
    # 4. "direction pointing to x_t" and the deterministic part of eq. 12
    c_eps = math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0))
    x_prev = plane_map(lambda a, e: math.sqrt(ab_prev) * a + c_eps * e, x0, eps)
    # 5. random noise (always drawn for FlatNoise, as the release draws it)
    if eta > 0 or isinstance(generator, FlatNoise):
        z = plane_randn_like(x_t, generator)
        x_prev = plane_map(lambda a, n: a + sigma * n, x_prev, z)
    return x_prev, x0


def ddim_timesteps(steps: int, num_timesteps: int = 1000) -> list[int]:
    """The release's grid reversed(torch.linspace(-1, T-1, S+1).int()) without its final -1,
    computed as the release computes it: float32 linspace, truncated to int.

    In exact arithmetic t_i = floor(T i / S) - 1 for i = S, ..., 1: for S = 100, T = 1000 this is
    999, 989, ..., 9 (the trailing spacing of diffusers when S divides T); float32 rounding moves
    one timestep down by 1 for 84 of the 1000 possible S (e.g. S = 26). The step after the last
    one goes to t = -1 and returns the predicted x_0.
    """
    if not 1 <= steps <= num_timesteps:
        raise BadInputError(f"sampling steps must be in 1..{num_timesteps}, got {steps}")
    grid = torch.linspace(-1, num_timesteps - 1, steps + 1, dtype=torch.float32).int().tolist()
    return grid[::-1][:-1]


def dpm_timesteps(steps: int, schedule: NoiseSchedule) -> list[int]:
    """DPM-Solver's "logSNR" grid: `steps` integer timesteps from T-1 down to 0, uniform in
    lambda_t = log(alpha_t / sigma_t) (Lu et al. 2022), each rounded to the nearest timestep and
    nudged so the grid is strictly decreasing. Ending at t = 0 (not at T/S - 1 like the DDIM grid)
    makes the last evaluation a near-clean denoise, which few-step samplers need.
    """
    T = schedule.num_timesteps
    if not 1 <= steps <= T:
        raise BadInputError(f"sampling steps must be in 1..{T}, got {steps}")
    if steps == 1:
        return [T - 1]
    ab = schedule.alphas_cumprod.numpy()
    lam = 0.5 * np.log(ab / (1.0 - ab))  # decreasing in t
    targets = np.linspace(lam[T - 1], lam[0], steps)
    ts = [int(round(v)) for v in np.interp(targets, lam[::-1], np.arange(T - 1, -1, -1))]
    ts[0], ts[-1] = T - 1, 0
    for i in range(steps - 2, 0, -1):  # strictly decreasing from the bottom ...
        ts[i] = max(ts[i], ts[i + 1] + 1)
    for i in range(1, steps):  # ... and from the top
        ts[i] = min(ts[i], ts[i - 1] - 1)
    return ts


# ---------------------------------------------------------------------------------------------
# Sampling: full loops
# ---------------------------------------------------------------------------------------------


def _walk(model_fn: ModelFn, x_T: Planes, ts: list[int], step: Callable[..., tuple[Planes, Planes]],
          callback: Callback | None) -> Planes:
    """x_T down the timesteps ts (then t = -1, the data), one network evaluation and one
    `step(eps, x_t, t, t_prev) -> (x_{t_prev}, x0)` each."""
    x = x_T
    for i, (t, t_prev) in enumerate(zip(ts, ts[1:] + [-1])):
        eps = model_fn(x, _timestep_vector(t, x))
        x, x0 = step(eps, x, t, t_prev)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0": x0})
    return x


def sample_ddpm(
    model_fn: ModelFn,
    x_T: Planes,
    schedule: NoiseSchedule,
    generator: Noise = None,
    callback: Callback | None = None,
    x0_bound: X0Bound = 1.0,
) -> Planes:
    """Full ancestral DDPM sampling over all T timesteps (Ho et al. 2020, Algorithm 2)."""
    ts = list(range(schedule.num_timesteps - 1, -1, -1))
    step = lambda eps, x, t, t_prev: ddpm_step(eps, x, t, schedule, generator, x0_bound)
    return _walk(model_fn, x_T, ts, step, callback)


def sample_ddim(
    model_fn: ModelFn,
    x_T: Planes,
    schedule: NoiseSchedule,
    steps: int,
    eta: float,
    generator: Noise = None,
    callback: Callback | None = None,
    x0_bound: X0Bound = 1.0,
) -> Planes:
    """DDIM sampling (Song et al. 2021, eq. 12) on the reference grid `ddim_timesteps(steps)`.

    eta = 0 is deterministic DDIM; eta = 1 (the reference's setting) is DDPM-like ancestral
    sampling on the sub-sequence. With S dividing T this equals diffusers' DDIMScheduler with
    trailing spacing, set_alpha_to_one and clip_sample.
    """
    step = lambda eps, x, t, t_prev: ddim_step(eps, x, t, t_prev, schedule, eta, generator, x0_bound)
    return _walk(model_fn, x_T, ddim_timesteps(steps, schedule.num_timesteps), step, callback)


def sample_dpmpp_2m(
    model_fn: ModelFn,
    x_T: Planes,
    schedule: NoiseSchedule,
    steps: int,
    callback: Callback | None = None,
    x0_bound: X0Bound = 1.0,
) -> Planes:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep second-order solver of the
    diffusion ODE in data-prediction form; deterministic, so it takes no generator.

    With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t), lambda_t = log(alpha_t / sigma_t)
    and h_i = lambda_{t_i} - lambda_{t_{i-1}}:

        first step, DPM-Solver++(1) (= DDIM, eta 0):
            x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) x_{t_{i-1}} - alpha_{t_i} (e^{-h_i} - 1) x0_{i-1}
        later steps: the same update with x0_{i-1} replaced by
            D_i = (1 + 1/(2 r_i)) x0_{i-1} - 1/(2 r_i) x0_{i-2},   r_i = h_{i-1} / h_i

    on the logSNR grid `dpm_timesteps(steps)` (999, ..., 0); the last step goes to alpha_bar = 1
    and returns the last predicted x_0 (first order). This equals diffusers'
    DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
    final_sigmas_type="zero") run on the same custom timesteps; x0_bound = 1 clamps x_0 predictions
    to [-1, 1] (diffusers: thresholding=True with sample_max_value=1).
    """
    ts = dpm_timesteps(steps, schedule)
    x = x_T
    x0_prev: Planes | None = None
    h_prev = 0.0
    for i, (s, t) in enumerate(zip(ts, ts[1:] + [-1])):
        eps = model_fn(x, _timestep_vector(s, x))
        # 1. data prediction x0_theta(x_s, s), clamped
        ab_s = schedule.alpha_bar(s)
        x0 = predict_x0(x, eps, ab_s, x0_bound)
        if t < 0:  # sigma_t = 0: the solution is the data prediction
            x = x0
        else:
            # 2. alpha, sigma, lambda at both ends; step size h in log-SNR
            ab_t = schedule.alpha_bar(t)
            alpha_t, sigma_s, sigma_t = math.sqrt(ab_t), math.sqrt(1.0 - ab_s), math.sqrt(1.0 - ab_t)
            lam_s = 0.5 * math.log(ab_s / (1.0 - ab_s))
            lam_t = 0.5 * math.log(ab_t / (1.0 - ab_t))
            h = lam_t - lam_s
            # 3. first order on the first step, second-order multistep correction afterwards
            if x0_prev is None:
                d = x0
            else:
                r = h_prev / h
                d = plane_map(lambda a, b: (1.0 + 0.5 / r) * a - (0.5 / r) * b, x0, x0_prev)
            # 4. exponential-integrator update
            c_x, c_d = sigma_t / sigma_s, -alpha_t * math.expm1(-h)
            x = plane_map(lambda a, b: c_x * a + c_d * b, x, d)
            h_prev = h
        x0_prev = x0
        if callback is not None:
            callback({"i": i, "t": s, "x": x, "x0": x0})
    return x


SAMPLERS = get_args(Sampler)  # ("ddpm", "ddim", "dpm")


def sample(
    model_fn: ModelFn,
    x_T: Planes,
    schedule: NoiseSchedule,
    sampler: Sampler = "ddim",
    steps: int = 100,
    eta: float = 1.0,
    generator: Noise = None,
    callback: Callback | None = None,
    x0_bound: X0Bound = 1.0,
) -> Planes:
    """Dispatch on a sampler name (SampleConfig.sampler): ddpm (all T steps), ddim, dpm (DPM-Solver++(2M))."""
    if sampler == "ddpm":
        return sample_ddpm(model_fn, x_T, schedule, generator, callback, x0_bound)
    if sampler == "ddim":
        return sample_ddim(model_fn, x_T, schedule, steps, eta, generator, callback, x0_bound)
    if sampler == "dpm":
        return sample_dpmpp_2m(model_fn, x_T, schedule, steps, callback, x0_bound)
    raise BadInputError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
