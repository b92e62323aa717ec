"""Noise schedule, joint loss and samplers.

Golden numbers: diffusers 0.42.1 (DDPMScheduler / DDIMScheduler / DPMSolverMultistepScheduler with
the settings named in each test), run once outside the project on the dummy model
eps = 0.1 x + 0.01 t / 1000 from x_T = torch.manual_seed(0); torch.randn(2, 4, 3, 3) with noise from
torch.Generator().manual_seed(1) (DDPM) or manual_seed(2) (DDIM); torch 2.13 CPU. 'steps' holds
the first 4 numbers of x after each of the first 3 steps, 'final' the first 8 of the result.
An independent float64 NumPy derivation checks the same runs given the same noise draws.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
import torch

from pvdm_core.base.config import DiffusionConfig, UNetConfig
from pvdm_core.diffusion.process import (NoiseSchedule, diffusion_loss, draw_cond_mask, draw_timesteps, eps_from_v,
                                         linear_schedule, q_sample, v_target)
from pvdm_core.base.errors import BadInputError
from pvdm_core.diffusion.planes import plane_map, plane_mse, plane_randn_like, plane_std, scale_planes
from pvdm_core.diffusion.samplers import (ddim_step, ddim_timesteps, ddpm_step, dpm_timesteps, predict_x0, sample,
                                          sample_ddim, sample_ddpm, sample_dpmpp_2m)


pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (2, 4, 3, 3)
SCHEDULE = NoiseSchedule.linear(1000, 0.0015, 0.0195)

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


def dummy_model(x, t):
    return plane_map(lambda p: 0.1 * p + 0.01 * t.to(p.dtype).reshape(-1, *[1] * (p.ndim - 1)) / 1000, x)


def x_T():
    torch.manual_seed(0)
    return torch.randn(SHAPE)


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


def np_alpha_bar():
    betas = np.linspace(math.sqrt(0.0015), math.sqrt(0.0195), 1000, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


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


# ---- schedule and grids -------------------------------------------------------------------------


def test_linear_schedule():
    betas = linear_schedule(1000, 0.0015, 0.0195)
    assert betas.dtype == torch.float32 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(0.0015, rel=1e-6)
    assert betas[-1].item() == pytest.approx(0.0195, rel=1e-6)
    np.testing.assert_allclose(SCHEDULE.alphas_cumprod.numpy(), np_alpha_bar(), rtol=1e-6)
    assert SCHEDULE.alpha_bar(-1) == 1.0 and SCHEDULE.num_timesteps == 1000
    cfg_schedule = NoiseSchedule.from_config(DiffusionConfig())
    assert torch.equal(cfg_schedule.alphas_cumprod, SCHEDULE.alphas_cumprod)
    with pytest.raises(BadInputError):
        linear_schedule(1000, 0.02, 0.01)


def test_ddim_grid_and_last_step_returns_x0():
    ts = ddim_timesteps(100)
    assert len(ts) == 100 and ts[:2] == [999, 989] and ts[-1] == 9
    assert ddim_timesteps(10) == list(range(999, 0, -100))
    assert ddim_timesteps(1000) == list(range(999, -1, -1))
    for s in (7, 30, 400):  # the reference grid int(linspace(-1, 999, S + 1)), exact arithmetic
        assert ddim_timesteps(s) == [1000 * i // s - 1 for i in range(s, 0, -1)]
    seen = []
    final = sample_ddim(dummy_model, x_T(), SCHEDULE, 100, 1.0, torch.Generator().manual_seed(0), seen.append)
    assert [d["t"] for d in seen] == ts
    assert torch.equal(final, seen[-1]["x0"]) and final.abs().max() <= 1.0
    with pytest.raises(BadInputError):
        ddim_timesteps(0)
    with pytest.raises(BadInputError):
        ddim_timesteps(1001)


def test_dpm_grid():
    for s in (1, 2, 5, 20, 25, 811, 1000):
        ts = dpm_timesteps(s, SCHEDULE)
        assert len(ts) == s and ts[0] == 999 and all(a > b for a, b in zip(ts, ts[1:]))
        assert s == 1 or ts[-1] == 0
    assert dpm_timesteps(1000, SCHEDULE) == list(range(999, -1, -1))


def test_step_functions_at_boundaries():
    x, eps = x_T(), dummy_model(x_T(), torch.full((2,), 999))
    x_prev, x0 = ddim_step(eps, x, 999, -1, SCHEDULE, eta=1.0)
    assert torch.equal(x_prev, x0) and x0.abs().max() <= 1
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, _ = ddpm_step(eps, x, 0, SCHEDULE, g1)  # t = 0: no noise is drawn
    assert torch.equal(g1.get_state(), g2.get_state())
    b, x0b = ddpm_step(eps, x, 0, SCHEDULE, g1)
    assert torch.equal(a, b)


# ---- plane tuples, determinism, evaluations ---------------------------------------------------


class Planes(NamedTuple):
    z_s: torch.Tensor
    z_h: torch.Tensor
    z_w: torch.Tensor


def tri_planes(batch=2, seed=0, h=8, t=16):
    g = torch.Generator().manual_seed(seed)
    return Planes(*(torch.randn(batch, 4, *hw, generator=g) for hw in ((h, h), (t, h), (t, h))))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm"])
def test_plane_tuples_and_determinism(sampler):
    calls = []

    def model_fn(x, t):
        calls.append(int(t[0]))
        assert isinstance(x, Planes) and t.shape == (2,) and t.dtype == torch.long
        return dummy_model(x, t)

    steps = 1000 if sampler == "ddpm" else 12
    outs = [sample(model_fn, tri_planes(), SCHEDULE, sampler, steps, 1.0, torch.Generator().manual_seed(5))
            for _ in range(2)]
    assert len(calls) == 2 * steps  # one network evaluation per step
    assert isinstance(outs[0], Planes)
    assert [p.shape for p in outs[0]] == [p.shape for p in tri_planes()]
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    other = sample(dummy_model, tri_planes(), SCHEDULE, sampler, steps, 1.0, torch.Generator().manual_seed(6))
    assert torch.equal(outs[0].z_s, other.z_s) == (sampler == "dpm")  # only DPM-Solver++ ignores noise


def test_per_row_generators_make_samples_batch_independent():
    """A list of generators, one per batch row: row b's noise comes from generators[b] alone."""
    x = tri_planes(3)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    full = sample_ddim(dummy_model, x, SCHEDULE, 10, 1.0, gens([5, 6, 7]))
    alone = sample_ddim(dummy_model, plane_map(lambda p: p[1:2], x), SCHEDULE, 10, 1.0, gens([6]))
    for a, b in zip(full, alone):
        torch.testing.assert_close(a[1:2], b, rtol=0, atol=0)
    assert not torch.equal(full.z_s[0], full.z_s[1])


def test_deterministic_samplers_act_per_plane():
    x = tri_planes()
    joint = sample_ddim(dummy_model, x, SCHEDULE, 10, 0.0)
    for i, p in enumerate(x):
        torch.testing.assert_close(joint[i], sample_ddim(dummy_model, p, SCHEDULE, 10, 0.0), rtol=0, atol=0)


def test_unknown_sampler():
    with pytest.raises(BadInputError, match="unknown sampler"):
        sample(dummy_model, x_T(), SCHEDULE, "euler")


def test_dpmpp_2m_is_accurate_in_20_steps():
    """With the exact eps of a two-Gaussian mixture, 20 DPM-Solver++(2M) steps land near the ODE
    solution (a 250-step solve) while 20 DDIM steps on the reference grid do not."""
    ab = SCHEDULE.alphas_cumprod.float()
    m, s = 0.5, 0.1

    def exact_eps(x, t):
        a, var = ab[t].sqrt()[:, None], (ab[t] * s * s + 1 - ab[t])[:, None]
        w = torch.sigmoid(2 * x * a * m / var)
        return (1 - ab[t]).sqrt()[:, None] * (w * (x - a * m) + (1 - w) * (x + a * m)) / var

    x = torch.randn(2048, 2, generator=torch.Generator().manual_seed(0))
    ref = sample_dpmpp_2m(exact_eps, x, SCHEDULE, 250)
    assert ref.abs().mean().item() == pytest.approx(0.5, abs=0.01)  # the mixture's modes
    assert ref.std().item() == pytest.approx(math.sqrt(m * m + s * s), abs=0.01)
    assert (sample_dpmpp_2m(exact_eps, x, SCHEDULE, 20) - ref).abs().mean() < 0.01
    assert (sample_ddim(exact_eps, x, SCHEDULE, 20, 0.0) - ref).abs().mean() > 0.03


# ---- training -----------------------------------------------------------------------------------


def test_q_sample():
    x0, noise = x_T(), torch.randn(SHAPE)
    t = torch.tensor([0, 999])
    xt = q_sample(x0, t, noise, SCHEDULE)
    ab = np_alpha_bar()
    for i in range(2):
        want = np.sqrt(ab[t[i]]) * x0[i].double().numpy() + np.sqrt(1 - ab[t[i]]) * noise[i].double().numpy()
        np.testing.assert_allclose(xt[i].numpy(), want, rtol=1e-5, atol=1e-6)
    tri = q_sample(tri_planes(), t, tri_planes(seed=1), SCHEDULE)
    assert isinstance(tri, Planes)


def cond_model(x, t, cond):
    """eps prediction that uses the condition; cond=None means zeros."""
    if cond is None:
        return plane_map(lambda p: 0.5 * p, x)
    return plane_map(lambda p, c: 0.5 * p + 0.3 * c, x, cond)


def test_joint_loss_masks_the_condition():
    g = torch.Generator().manual_seed(0)
    z_next, z_prev, noise = tri_planes(4, 1), tri_planes(4, 2), plane_randn_like(tri_planes(4), g)
    t = draw_timesteps(4, SCHEDULE, g)
    none = torch.zeros(4, dtype=torch.bool)
    uncond = plane_mse(cond_model(q_sample(z_next, t, noise, SCHEDULE), t, None), noise)
    assert diffusion_loss(cond_model, z_next, z_prev, t, noise, none, SCHEDULE) == uncond
    assert diffusion_loss(cond_model, z_next, None, t, noise, None, SCHEDULE) == uncond
    full = diffusion_loss(cond_model, z_next, z_prev, t, noise, ~none, SCHEDULE)
    assert full != uncond
    # a mixed mask: the mean over examples of each example's own (un)conditional error
    mask = torch.tensor([True, False, True, False])
    per_ex = []
    for i in range(4):
        sl = lambda p: p[i : i + 1]  # noqa: E731
        ex = (plane_map(sl, z_next), plane_map(sl, z_prev), t[i : i + 1], plane_map(sl, noise), mask[i : i + 1])
        per_ex.append(diffusion_loss(cond_model, *ex, SCHEDULE))
    mixed = diffusion_loss(cond_model, z_next, z_prev, t, noise, mask, SCHEDULE)
    torch.testing.assert_close(mixed, torch.stack(per_ex).mean())


def test_v_prediction_round_trip_and_loss():
    g = torch.Generator().manual_seed(3)
    x0, noise = tri_planes(4, 1), plane_randn_like(tri_planes(4), g)
    t = torch.tensor([0, 10, 500, 999])
    x_t = q_sample(x0, t, noise, SCHEDULE)
    v = v_target(x0, t, noise, SCHEDULE)
    for e, n in zip(eps_from_v(v, x_t, t, SCHEDULE), noise):  # the exact v gives back the exact eps
        torch.testing.assert_close(e, n, atol=1e-5, rtol=1e-5)
    # at t = 999: v = sqrt(ab) eps - sqrt(1 - ab) x_0 with ab = alpha_bar_999
    ab = SCHEDULE.alpha_bar(999)
    torch.testing.assert_close(v[0][3], math.sqrt(ab) * noise[0][3] - math.sqrt(1 - ab) * x0[0][3])
    v_model = lambda x, tt, c: v_target(x0, tt, noise, SCHEDULE)  # noqa: E731
    assert diffusion_loss(v_model, x0, None, t, noise, None, SCHEDULE, "v") == 0
    assert diffusion_loss(v_model, x0, None, t, noise, None, SCHEDULE, "eps") > 0
    with pytest.raises(BadInputError, match="prediction"):
        diffusion_loss(v_model, x0, None, t, noise, None, SCHEDULE, "x0")


def test_x0_bound_per_plane_and_latent_scaling():
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(2, 4, 5, 5, generator=g), 3 * torch.randn(2, 4, 8, 5, generator=g))
    eps = tuple(torch.zeros_like(p) for p in x)
    ab = 0.25  # x_0 = 2 x_t when eps = 0
    clamped = predict_x0(x, eps, ab, (1.0, 4.0))
    assert clamped[0].abs().max() == 1.0 and clamped[1].abs().max() == 4.0
    assert torch.equal(predict_x0(x, eps, ab, 1.0)[1], (2 * x[1]).clamp(-1, 1))
    assert torch.equal(predict_x0(x, eps, ab, None)[0], 2 * x[0])
    # scaling by 1 / std gives unit-variance planes, and scaling back restores them
    std = plane_std(x)
    unit = scale_planes(x, [1 / s for s in std])
    assert all(abs(v - 1.0) < 1e-5 for v in plane_std(unit))
    for a, b in zip(scale_planes(unit, std), x):
        torch.testing.assert_close(a, b)


def test_plane_mse_weights_planes_by_size():
    a = tri_planes(1)
    b = Planes(a.z_s + 1, a.z_h, a.z_w)  # error 1 on 256 of 1280 numbers
    assert plane_mse(a, b).item() == pytest.approx(256 / 1280)


def test_draw_cond_mask():
    mask = draw_cond_mask(10000, 0.3, torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert torch.equal(mask, draw_cond_mask(10000, 0.3, torch.Generator().manual_seed(0)))


@pytest.mark.slow
def test_tiny_unet_overfits_a_fixed_batch():
    from pvdm_core.models.unet import TriplaneUNet

    torch.manual_seed(0)
    cfg = UNetConfig(base_channels=32, channel_mult=[1, 2], num_res_blocks=1, attn_levels=[0, 1], heads=4)
    model = TriplaneUNet(cfg)
    g = torch.Generator().manual_seed(0)
    z_next = plane_map(lambda p: p.clamp(-1, 1), tri_planes(2, 1, h=4, t=8))
    z_prev = plane_map(lambda p: p.clamp(-1, 1), tri_planes(2, 2, h=4, t=8))
    noise, t = plane_randn_like(z_next, g), torch.tensor([100, 700])
    mask = torch.tensor([True, False])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss = diffusion_loss(model, z_next, z_prev, t, noise, mask, SCHEDULE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(1.0, abs=0.15)  # zero-initialised output: loss = E[eps^2]
    assert losses[-1] < 0.5 * losses[0]
