"""The samplers against golden numbers and an independent derivation.

Golden numbers: diffusers 0.42.1 (DDPMScheduler / DDIMScheduler / DPMSolverMultistepScheduler with
the settings named in each test), run once outside the project on the dummy model
eps = 0.1 x + 0.01 t / 1000 from x_T = torch.manual_seed(0); torch.randn(2, 4, 3, 3) with noise from
torch.Generator().manual_seed(1) (DDPM) or manual_seed(2) (DDIM); torch 2.13 CPU. 'steps' holds
the first 4 numbers of x after each of the first 3 steps, 'final' the first 8 of the result.
An independent float64 NumPy derivation checks the same runs given the same noise draws.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from pvdm_core.diffusion.samplers import dpm_timesteps, sample_ddim, sample_ddpm, sample_dpmpp_2m
from sampler_dummy import SCHEDULE, SHAPE, dummy_model, np_alpha_bar, x_T

pytestmark = pytest.mark.usefixtures("one_thread")

# diffusers settings: betas 'scaled_linear' 0.0015..0.0195 (1000 steps) for all three;
# DDPMScheduler(variance_type='fixed_small', clip_sample=True), 1000 steps;
# DDIMScheduler(timestep_spacing='trailing', set_alpha_to_one=True, clip_sample=True), eta as named;
# DPMSolverMultistepScheduler(algorithm_type='dpmsolver++', solver_order=2, final_sigmas_type='zero',
#   lower_order_final=True, thresholding=<clip>, sample_max_value=1.0) on the custom timesteps
#   dpm_timesteps(20).

GOLDEN = {
    'ddpm': {
        'steps': [
            [-1.3280783, -1.2460653, -0.33968103, -0.65461349],
            [-1.3857405, -1.4398715, -0.38425785, -0.69034243],
            [-1.2547982, -1.263494, -0.30726624, -0.45804635],
        ],
        'final': [-0.62329644, -0.95684093, -0.80181617, -1,
                  0.57940114, 0.65494251, 0.65910709, 0.89186037],
        'final_mean': 0.0524281851,
    },
    'ddim_10_0.0': {
        'steps': [
            [-0.13233851, -0.13498937, -0.044851225, -0.063173115],
            [-0.069353983, -0.069618508, -0.060623825, -0.062452123],
            [-0.12489393, -0.12492017, -0.11905403, -0.12241848],
        ],
        'final': [-0.81681812, -0.81698179, -0.78035134, -0.80136025,
                  0.85258377, 0.85161567, -0.78785115, -0.82293105],
        'final_mean': 0.109090237,
    },
    'ddim_10_1.0': {
        'steps': [
            [-1.024194, 0.76769221, -1.2304333, -1.0595978],
            [0.32398319, 0.35005602, 0.41467133, -0.37751767],
            [0.45319799, 0.41725779, -0.61257064, -0.68510079],
        ],
        'final': [0.51290965, 1, -0.047393102, 0.94833189,
                  -0.68720102, 0.42140642, -0.15346898, -0.78027391],
        'final_mean': -0.0269732656,
    },
    'ddim_100_0.0': {
        'steps': [
            [-0.11574008, -0.11839189, -0.028221525, -0.046549968],
            [-0.016169919, -0.016435072, -0.0074189808, -0.0092516337],
            [-0.0077573294, -0.0077838404, -0.0068823462, -0.0070655886],
        ],
        'final': [-0.63400006, -0.63409585, -0.62902355, -0.63151246,
                  0.75684756, 0.75676274, -0.63108832, -0.63755715],
        'final_mean': 0.134971015,
    },
    'ddim_100_1.0': {
        'steps': [
            [-0.54490125, 0.27778625, -0.57656413, -0.51119304],
            [0.1486311, 0.16465265, 0.19296491, -0.17842895],
            [0.18823382, 0.17147411, -0.33091524, -0.2891365],
        ],
        'final': [0.35098237, -0.68295825, 0.30100361, 0.80770385,
                  0.9379878, -0.73211253, -0.12216381, -0.37197086],
        'final_mean': -0.00702274839,
    },
    'dpmpp_20_False': {
        'steps': [
            [-1.6310589, -1.6693642, -0.36686051, -0.63161325],
            [-2.350976, -2.4060814, -0.53231734, -0.91318697],
            [-3.3983102, -3.4778626, -0.77282649, -1.3226643],
        ],
        'final': [-57.242104, -58.579136, -13.115364, -22.356543,
                  42.305828, 34.405666, -16.414261, -107.12215],
        'final_mean': 3.67604857,
    },
    'dpmpp_20_True': {
        'steps': [
            [-1.1316322, -1.1581503, -0.25644767, -0.43973184],
            [-1.1402488, -1.1667616, -0.2652362, -0.44848433],
            [-1.15316, -1.1796609, -0.27853927, -0.46170533],
        ],
        'final': [-1, -1, -1, -1,
                  1, 1, -1, -1],
        'final_mean': 0.100559049,
    },
}


def ddim_run(steps, eta):
    return lambda cb: sample_ddim(dummy_model, x_T(), SCHEDULE, steps, eta, torch.Generator().manual_seed(2), cb)


RUNS = {
    "ddpm": lambda cb: sample_ddpm(dummy_model, x_T(), SCHEDULE, torch.Generator().manual_seed(1), cb),
    "ddim_10_0.0": ddim_run(10, 0.0),
    "ddim_10_1.0": ddim_run(10, 1.0),
    "ddim_100_0.0": ddim_run(100, 0.0),
    "ddim_100_1.0": ddim_run(100, 1.0),
    "dpmpp_20_False": lambda cb: sample_dpmpp_2m(dummy_model, x_T(), SCHEDULE, 20, cb, x0_bound=None),
    "dpmpp_20_True": lambda cb: sample_dpmpp_2m(dummy_model, x_T(), SCHEDULE, 20, cb, x0_bound=1.0),
}


def run_with_trajectory(name):
    traj = []
    final = RUNS[name](lambda d: traj.append(d["x"]))
    return traj, final


@pytest.mark.parametrize("name", list(GOLDEN))
def test_samplers_match_diffusers_golden(name):
    gold = GOLDEN[name]
    traj, final = run_with_trajectory(name)
    scale = max(1.0, max(abs(v) for v in gold["final"]))
    for got, want in zip(traj[:3], gold["steps"]):
        np.testing.assert_allclose(got.flatten()[:4].numpy(), want, rtol=0, atol=2e-6 * scale)
    # float32 round-off accumulated over up to 1000 steps (diffusers keeps alpha_bar in float32)
    np.testing.assert_allclose(final.flatten()[:8].numpy(), gold["final"], rtol=0, atol=1e-4 * scale)
    assert final.double().mean().item() == pytest.approx(gold["final_mean"], abs=2e-5 * scale)


# ---- independent float64 NumPy derivation --------------------------------------------------------


def np_eps(x, t):
    return 0.1 * x + 0.01 * t / 1000


def np_ddpm(x, noises):
    ab = np_alpha_bar()
    for t in range(999, -1, -1):
        ab_prev = ab[t - 1] if t > 0 else 1.0
        beta = 1 - ab[t] / ab_prev
        x0 = np.clip((x - np.sqrt(1 - ab[t]) * np_eps(x, t)) / np.sqrt(ab[t]), -1, 1)
        mean = np.sqrt(ab_prev) * beta / (1 - ab[t]) * x0 + np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab[t]) * x
        x = mean + (np.sqrt((1 - ab_prev) / (1 - ab[t]) * beta) * next(noises) if t > 0 else 0)
    return x


def np_ddim(x, steps, eta, noises):
    ab = np_alpha_bar()
    grid = [int(v) for v in np.linspace(-1, 999, steps + 1)][::-1]
    for t, t_prev in zip(grid[:-1], grid[1:]):
        e = np_eps(x, t)
        x0 = np.clip((x - np.sqrt(1 - ab[t]) * e) / np.sqrt(ab[t]), -1, 1)
        if t_prev < 0:
            return x0
        sigma = eta * np.sqrt((1 - ab[t_prev]) / (1 - ab[t]) * (1 - ab[t] / ab[t_prev]))
        x = np.sqrt(ab[t_prev]) * x0 + np.sqrt(1 - ab[t_prev] - sigma**2) * e
        if eta > 0:
            x = x + sigma * next(noises)
    raise AssertionError


def np_dpmpp_2m(x, grid, clip):
    ab = np_alpha_bar()
    lam = lambda t: 0.5 * np.log(ab[t] / (1 - ab[t]))  # noqa: E731
    x0_prev, h_prev = None, None
    for s, t in zip(grid, grid[1:] + [-1]):
        x0 = (x - np.sqrt(1 - ab[s]) * np_eps(x, s)) / np.sqrt(ab[s])
        if clip:
            x0 = np.clip(x0, -1, 1)
        if t < 0:
            return x0
        h = lam(t) - lam(s)
        d = x0 if x0_prev is None else (1 + 1 / (2 * h_prev / h)) * x0 - 1 / (2 * h_prev / h) * x0_prev
        x = np.sqrt((1 - ab[t]) / (1 - ab[s])) * x - np.sqrt(ab[t]) * np.expm1(-h) * d
        x0_prev, h_prev = x0, h
    raise AssertionError


def noise_stream(seed):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randn(SHAPE, generator=g).double().numpy()


@pytest.mark.parametrize(
    "name,reference",
    [
        ("ddpm", lambda x: np_ddpm(x, noise_stream(1))),
        ("ddim_10_0.0", lambda x: np_ddim(x, 10, 0.0, noise_stream(2))),
        ("ddim_10_1.0", lambda x: np_ddim(x, 10, 1.0, noise_stream(2))),
        ("ddim_100_1.0", lambda x: np_ddim(x, 100, 1.0, noise_stream(2))),
        ("dpmpp_20_False", lambda x: np_dpmpp_2m(x, dpm_timesteps(20, SCHEDULE), False)),
        ("dpmpp_20_True", lambda x: np_dpmpp_2m(x, dpm_timesteps(20, SCHEDULE), True)),
    ],
)
def test_samplers_match_float64_numpy(name, reference):
    want = reference(x_T().double().numpy())
    got = RUNS[name](None).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
