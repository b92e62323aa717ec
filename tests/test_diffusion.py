"""Noise schedule, joint loss and samplers (their golden numbers: test_samplers_golden.py)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
import torch

from pvdm_core.base.config import DiffusionConfig, UNetConfig, load_config
from pvdm_core.diffusion.process import (NoiseSchedule, diffusion_loss, draw_cond_mask, draw_timesteps, eps_from_v,
                                         linear_schedule, q_sample, v_target)
from pvdm_core.base.errors import BadInputError
from pvdm_core.diffusion.planes import plane_map, plane_mse, plane_randn_like, plane_std, scale_planes
from pvdm_core.diffusion.samplers import (ddim_step, ddim_timesteps, ddpm_step, dpm_timesteps, predict_x0, sample,
                                          sample_ddim, sample_dpmpp_2m)
from sampler_dummy import SCHEDULE, SHAPE, dummy_model, np_alpha_bar, x_T

pytestmark = pytest.mark.usefixtures("one_thread")

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


def test_logsnr_shift_raises_every_log_snr_by_the_shift():
    shifted = NoiseSchedule.from_config(DiffusionConfig(logsnr_shift=2.0))
    logsnr = lambda s: torch.log(s.alphas_cumprod / (1 - s.alphas_cumprod))  # noqa: E731
    torch.testing.assert_close(logsnr(shifted) - logsnr(SCHEDULE), torch.full((1000,), 2.0, dtype=torch.float64))
    assert shifted.betas.min() > 0 and shifted.betas.max() < 1
    assert (shifted.alphas_cumprod > 0.5).float().mean() == pytest.approx(0.496)  # the reference: 0.255
    # alpha_bar_t = 1 / (1 + exp(-logsnr)); the reference's log-SNR at t = 500 is -2.041
    assert shifted.alpha_bar(500) == pytest.approx(1 / (1 + math.exp(2.041 - 2.0)), rel=1e-3)


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


def test_plane_loss_weights_weight_each_plane_and_default_to_the_plain_mean():
    a = tri_planes(2)
    b = Planes(a.z_s + 1, a.z_h, a.z_w)  # error 1 on the content plane, a fifth of the numbers
    assert plane_mse(a, b, plane_weights=[4, 1, 1]).item() == pytest.approx(4 * 256 / (4 * 256 + 1024))
    noisy = plane_map(lambda p: p + torch.randn_like(p), a)
    plain = sum(((x - y) ** 2).sum() for x, y in zip(a, noisy)) / 2560  # the reference's L_simple
    assert torch.equal(plane_mse(a, noisy), plain) and torch.equal(plane_mse(a, noisy, plane_weights=[1, 1, 1]), plain)
    per_example = torch.tensor([0.5, 2.0])
    assert torch.equal(plane_mse(a, noisy, per_example, [1, 1, 1]), plane_mse(a, noisy, per_example))
    for bad in ("[1, 1]", "[-1, 1, 1]", "[0, 0, 0]"):  # refused when the config is read, before any work
        with pytest.raises(BadInputError, match="plane_loss_weights"):
            load_config("demo", None, [f"diffusion.plane_loss_weights={bad}"])


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
