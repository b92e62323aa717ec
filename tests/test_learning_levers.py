"""Issue 24's levers and measures: latent noise in AE training, the lr schedule that follows a
time budget, the shape judge's blur, the clip-boundary jump and the class set's labels.json."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from helpers import SMALL
from pvdm_core.artifacts.load import build_autoencoder
from pvdm_core.base.config import load_config
from pvdm_core.data.synthetic import LABELS_FILE, SHAPES, synthetic_background, synthetic_main_shape, synthetic_video, write_synthetic_videos
from pvdm_core.diffusion.process import NoiseSchedule, diffusion_loss, min_snr_weights
from pvdm_core.evaluation.metrics.continuity import boundary_jump, reconstruction_jump
from pvdm_core.evaluation.metrics.shape_judge import Judge, degrade, train_judge
from pvdm_core.io.video_io import to_uint8
from pvdm_core.models.autoencoder import Latents
from pvdm_core.training.toolbox import TimeBudget, lr_factor
from pvdm_core.training.train_diffusion import noisy_condition

CPU = torch.device("cpu")


def test_lr_follows_the_larger_of_step_and_time_share():
    f = lambda k, share: lr_factor(k, 110, "cosine", 10, 0.1, share)  # noqa: E731
    assert f(60, 0.0) == pytest.approx(0.55)  # by the steps alone, as before
    assert f(10, 0.5) == pytest.approx(0.55)  # half the time used at step 10: half-way down
    assert f(60, 0.2) == pytest.approx(0.55)  # the steps are further along: they decide
    assert f(10, 1.0) == pytest.approx(0.1) and f(3, 0.9) == pytest.approx(0.4)  # warm-up stays by steps
    assert lr_factor(50, 100, "constant", 0, 0.1, 0.9) == 1.0


def test_time_budget_counts_earlier_runs(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    budget = TimeBudget(60.0, spent_s=30.0)
    assert budget.share(CPU) == pytest.approx(0.5) and budget.left_s() == 30.0
    now[0] += 15
    assert budget.share(CPU) == pytest.approx(0.75)
    now[0] += 100
    assert budget.share(CPU) == 1.0 and TimeBudget(0.0).share(CPU) == 1.0


def test_latent_noise_reaches_the_decoder_only():
    cfg = load_config("tiny")
    ae = build_autoencoder(cfg).eval()
    x = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    with torch.no_grad():
        plain, z = ae(x)
        zero = Latents(*(torch.zeros_like(p) for p in z))
        same, z_same = ae(x, zero)
        noisy, z_noisy = ae(x, Latents(*(0.1 * torch.ones_like(p) for p in z)))
    assert torch.equal(plain, same) and all(torch.equal(a, b) for a, b in zip(z, z_noisy))
    assert (noisy - plain).abs().max() > 1e-3


def _train_ae(cli, out, *extra):
    cli("train-ae", "--out", out, "--steps", "2", "--batch-size", "2", *SMALL, "--set", "ae_train.log_every=1", *extra)
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if "loss" in line]


def test_train_ae_latent_noise_changes_training_and_zero_is_the_reference(cli, tmp_path):
    base = _train_ae(cli, tmp_path / "a")
    assert _train_ae(cli, tmp_path / "b", "--set", "ae_train.latent_noise=0") == base  # no extra draws
    noisy = _train_ae(cli, tmp_path / "c", "--set", "ae_train.latent_noise=0.5")
    assert noisy[0] != base[0]
    assert load_config("ucf256").ae_train.latent_noise == 0.0  # the reference presets stay the paper's


def test_degrade_blurs_deterministically():
    videos = torch.rand(8, 3, 4, 32, 32) * 2 - 1
    out = degrade(videos, torch.Generator().manual_seed(0))
    assert out.shape == videos.shape and torch.equal(out, degrade(videos, torch.Generator().manual_seed(0)))
    assert out.mean().item() == pytest.approx(videos.mean().item(), abs=2e-2)
    # neighbouring pixels agree far more than in white noise: every video was pooled
    assert (out[..., 1:] - out[..., :-1]).abs().mean() < 0.5 * (videos[..., 1:] - videos[..., :-1]).abs().mean()


def test_reconstruction_jump_is_the_real_jump_for_a_perfect_autoencoder_and_grows_with_clipwise_error():
    videos = torch.stack([synthetic_video(s, 8, 16, single_shape=True) for s in range(3)])  # (3, 3, 8, 16, 16)
    real = boundary_jump(np.stack([to_uint8(v) for v in videos]), 4)
    assert reconstruction_jump(lambda clip: clip, videos, 4) == real
    offsets = iter([-0.2, 0.2])  # each clip reconstructed with its own error, as a real autoencoder's
    shifted = reconstruction_jump(lambda clip: clip + next(offsets), videos, 4)
    assert shifted["inside"] == pytest.approx(real["inside"], abs=0.5) and shifted["boundary"] > real["boundary"] + 40


def test_background_is_the_video_without_its_shape():
    video, background = synthetic_video(7, 4, 32, single_shape=True), synthetic_background(7, 4, 32)
    changed = (video != background).any(0)  # (T, H, W): where the shape is drawn
    assert 0.05 < changed.float().mean() < 0.6  # one shape, most of the frame is background
    assert torch.equal(synthetic_background(7, 4, 32), background)


def test_shape_scale_shrinks_the_shape_and_keeps_its_draws():
    full, half = (synthetic_video(7, 4, 32, single_shape=True, shape_scale=k) for k in (1.0, 0.5))
    background = synthetic_background(7, 4, 32)
    area = lambda v: (v != background).any(0).float().mean()  # noqa: E731  # share of pixels the shape covers
    assert 0.15 < area(half) / area(full) < 0.4  # a quarter of the area, give or take the soft edge
    assert torch.equal(synthetic_video(7, 4, 32, single_shape=True, shape_scale=1.0), synthetic_video(7, 4, 32, single_shape=True))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="shape_scale"):
            synthetic_video(7, 4, 32, single_shape=True, shape_scale=bad)


def test_judge_learns_shapes_of_every_size(monkeypatch):
    import pvdm_core.evaluation.metrics.shape_judge as shape_judge

    seen = []
    real = shape_judge.real_videos
    monkeypatch.setattr(shape_judge, "real_videos", lambda *a: seen.append(a[3] if len(a) > 3 else None) or real(*a))
    train_judge(n_train=24, n_test=6, frames=4, max_steps=1, min_scale=0.5)
    train_scales, test_scales, any_size_scales = seen
    assert train_scales.min() >= 0.5 and train_scales.max() <= 1 and train_scales.std() > 0.1
    assert test_scales is None  # the class set as it is drawn: its held-out accuracy is the judge's accuracy
    assert any_size_scales.min() >= 0.5 and any_size_scales.max() <= 1  # "any_size": the training sizes


def test_judge_names_no_shape_none_and_loads_old_three_class_judges():
    judge = train_judge(n_train=96, n_test=24, frames=4, max_steps=60)
    assert set(judge.accuracy) == {"real", "any_size", "none"} and judge.net[-1].out_features == len(SHAPES) + 1
    assert judge.accuracy["none"] > 0.8  # a shapeless background is the easiest class
    assert Judge.from_state_dict(judge.state_dict()).net[-1].out_features == len(SHAPES) + 1
    old = train_judge(n_train=24, n_test=6, frames=4, max_steps=2, none_class=False)
    assert set(old.accuracy) == {"real", "any_size"} and Judge.from_state_dict(old.state_dict()).net[-1].out_features == len(SHAPES)


def test_boundary_jump_of_a_cut_and_a_smooth_video():
    ramp = np.broadcast_to(np.arange(32, dtype=np.uint8)[None, :, None, None, None], (2, 32, 4, 4, 3))
    smooth = boundary_jump(ramp, 16)
    assert smooth["ratio"] == pytest.approx(1.0) and smooth["boundary"] == pytest.approx(1.0)
    cut = ramp.copy()
    cut[:, 16:] += 100
    assert boundary_jump(cut, 16)["ratio"] == pytest.approx(101.0)


def test_synth_class_set_writes_labels(tmp_path):
    paths = write_synthetic_videos(tmp_path, 3, 4, 16, 7, single_shape=True)
    labels = json.loads((tmp_path / LABELS_FILE).read_text())
    assert labels == {p.name: synthetic_main_shape(7 + i) for i, p in enumerate(paths)}
    write_synthetic_videos(tmp_path / "plain", 2, 4, 16, 7)
    assert not (tmp_path / "plain" / LABELS_FILE).exists()


def test_min_snr_weights_and_loss():
    schedule = NoiseSchedule.linear()
    t = torch.tensor([0, 500, 999])
    ab = schedule.alphas_cumprod[t].float()
    snr = ab / (1 - ab)
    eps_w = min_snr_weights(t, schedule, "eps", 5.0)
    assert eps_w[0] == pytest.approx(5.0 / snr[0].item(), rel=1e-5) and eps_w[2] == pytest.approx(1.0)
    assert min_snr_weights(t, schedule, "v", 5.0)[2] == pytest.approx((snr[2] / (snr[2] + 1)).item(), rel=1e-5)
    # a gamma above every SNR weights eps-prediction uniformly: the plain loss
    z = Latents(torch.randn(3, 4, 8, 8), torch.randn(3, 4, 16, 8), torch.randn(3, 4, 16, 8))
    noise = Latents(*(torch.randn_like(p) for p in z))
    model = lambda x, tt, cond: Latents(*(0.5 * p for p in x))  # noqa: E731
    plain = diffusion_loss(model, z, None, t, noise, None, schedule)
    assert diffusion_loss(model, z, None, t, noise, None, schedule, min_snr_gamma=1e9) == pytest.approx(plain.item())
    assert diffusion_loss(model, z, None, t, noise, None, schedule, min_snr_gamma=1.0) < plain


def test_cond_noise_perturbs_only_the_condition():
    g = torch.Generator().manual_seed(0)
    z_prev = Latents(torch.zeros(4, 4, 8, 8), torch.zeros(4, 4, 16, 8), torch.zeros(4, 4, 16, 8))
    noisy = noisy_condition(z_prev, 0.5, g, 4, slice(0, 4))
    assert noisy.z_s.std().item() == pytest.approx(0.5, rel=0.2)
    half = noisy_condition(z_prev.take(slice(2, 4)), 0.5, torch.Generator().manual_seed(0), 4, slice(2, 4))  # rank 1 of 2
    assert torch.equal(half.z_s, noisy.z_s[2:])  # the same draws for the global batch, split by rank
