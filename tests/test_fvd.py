"""FVD: preprocessing, streaming statistics, Fréchet and kernel distances, statistics files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from pvdm_core.base.errors import BadInputError, PvdmError
from pvdm_core.evaluation.fvd import (
    FeatureStats,
    compute_features,
    frechet_distance,
    fvd_from_stats,
    kernel_video_distance,
    make_protocol,
    preprocess_for_i3d,
)


def _features(n: int, d: int = 16, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    """Samples of one fixed correlated Gaussian with a large mean (seed picks the samples)."""
    mix = np.random.default_rng(1234).normal(size=(d, d)) / np.sqrt(d)
    return 10.0 + shift + np.random.default_rng(seed).normal(size=(n, d)) @ mix


# ---------------------------------------------------------------- preprocessing


def test_center_crop_matches_resize_then_crop():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(2, 3, 272, 640, 3), dtype=np.uint8)
    out = preprocess_for_i3d(video)
    assert out.shape == (2, 3, 3, 224, 224) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    # Reference: short side 272 -> 224, long side ceil(640 * 224 / 272) = 528, crop at 152.
    frames = torch.from_numpy(video[1]).permute(0, 3, 1, 2).float() / 255
    ref = F.interpolate(frames, size=(224, 528), mode="bilinear", align_corners=False)[..., 152:376]
    torch.testing.assert_close(out[1], (ref * 2 - 1).permute(1, 0, 2, 3), rtol=0, atol=1e-6)


def test_stretch_and_portrait_and_gray():
    video = np.full((1, 2, 300, 200, 3), 255, np.uint8)
    video[..., :150, :, :] = 0  # top half black
    crop = preprocess_for_i3d(video)  # 200 -> 224, 300 -> 336; crop rows 56..280
    assert crop.shape == (1, 3, 2, 224, 224)
    assert crop[0, :, :, 0].min() == -1 and crop[0, :, :, -1].max() == 1
    stretched = preprocess_for_i3d(torch.from_numpy(video), resize="stretch")
    assert stretched.shape == (1, 3, 2, 224, 224)
    gray = preprocess_for_i3d(np.full((1, 2, 224, 224, 1), 255, np.uint8))
    assert torch.equal(gray, torch.ones(1, 3, 2, 224, 224))


def test_preprocess_rejects_bad_input():
    with pytest.raises(BadInputError, match="uint8"):
        preprocess_for_i3d(np.zeros((1, 2, 64, 64, 3), np.float32))
    with pytest.raises(BadInputError, match="shaped"):
        preprocess_for_i3d(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(BadInputError, match="resize"):
        preprocess_for_i3d(np.zeros((1, 2, 64, 64, 3), np.uint8), resize="area")


# ---------------------------------------------------------------- streaming statistics


def test_streaming_stats_equal_batch_stats():
    x = _features(203)
    stats = FeatureStats()
    for lo, hi in ((0, 1), (1, 50), (50, 51), (51, 203)):
        stats.update(x[lo:hi] if lo % 2 else torch.from_numpy(x[lo:hi]))
    assert stats.n == 203
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(stats.cov(), np.cov(x, rowvar=False), rtol=0, atol=1e-10)
    np.testing.assert_allclose(stats.cov(ddof=0), np.cov(x, rowvar=False, ddof=0), rtol=0, atol=1e-10)


def test_merge_equals_one_pass_and_keeps_features():
    x = _features(90)
    a = FeatureStats(keep_features=True).update(x[:30])
    b = FeatureStats(keep_features=True).update(x[30:])
    a.merge(b)
    np.testing.assert_allclose(a.cov(), np.cov(x, rowvar=False), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(a.features, x)
    assert FeatureStats().merge(FeatureStats()).n == 0


def test_stats_reject_bad_features():
    stats = FeatureStats().update(_features(3))
    with pytest.raises(BadInputError, match="dims"):
        stats.update(np.zeros((2, 5)))
    with pytest.raises(PvdmError, match="NaN"):
        stats.update(np.full((1, 16), np.nan))
    with pytest.raises(BadInputError):
        FeatureStats().update(np.zeros(16))
    with pytest.raises(BadInputError, match="ddof=1"):
        FeatureStats().update(np.zeros((1, 4))).cov()
    with pytest.raises(BadInputError, match="empty"):
        FeatureStats().mean


def test_stats_file_round_trip(tmp_path):
    protocol = make_protocol(16, weights_sha256="ab" * 32, dataset="ucf101", clip="first")
    stats = FeatureStats(protocol, keep_features=True).update(_features(40))
    path = stats.save(tmp_path / "real.npz")
    np.load(path, allow_pickle=False).close()  # a plain npz, no pickles
    back = FeatureStats.load(path)
    assert back.n == 40 and back.protocol == {**protocol, "num_videos": 40}
    np.testing.assert_array_equal(back.mean, stats.mean)
    np.testing.assert_array_equal(back.cov(), stats.cov())
    np.testing.assert_array_equal(back.features, stats.features)
    assert fvd_from_stats(stats, back) == pytest.approx(0.0, abs=1e-8)

    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(BadInputError, match="not a pvdm FVD statistics file"):
        FeatureStats.load(tmp_path / "bad.npz")
    with pytest.raises(BadInputError, match="empty"):
        FeatureStats().save(tmp_path / "empty.npz")


def test_protocol_mismatch_refused():
    real = FeatureStats(make_protocol(16, weights_sha256="a" * 64, num_videos=2048)).update(_features(20))
    fake = FeatureStats(make_protocol(128, resize="stretch", weights_sha256="a" * 64, num_videos=64))
    fake.update(_features(20, seed=1))
    with pytest.raises(BadInputError) as e:
        fvd_from_stats(real, fake)
    assert "frames: 16 vs 128" in str(e.value) and "resize" in str(e.value)
    assert "num_videos" not in str(e.value)  # informational keys may differ
    with pytest.raises(BadInputError, match="bn_eps"):
        real.check_compatible(FeatureStats(make_protocol(16, bn_eps=1e-3, weights_sha256="a" * 64)))
    with pytest.raises(BadInputError, match="weights_sha256"):
        real.merge(FeatureStats(make_protocol(16, weights_sha256="b" * 64)))
    other = FeatureStats(make_protocol(16, weights_sha256="a" * 64, dataset="sky"))
    real.check_compatible(other.update(_features(5)))


# ---------------------------------------------------------------- distances


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    # Tr((S1 S2)^1/2) = sum of square roots of the eigenvalues of S1^1/2 S2 S1^1/2 (symmetric).
    r = scipy.linalg.sqrtm(s1).real
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum())


def test_frechet_matches_direct_computation():
    a, b = _features(500), _features(400, seed=1, shift=0.3)
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-6)
    # Two Gaussians with known distance: N(0, I) vs N(m, 4I) in d dims -> |m|^2 + d (1 + 4 - 2*2).
    d = 8
    assert frechet_distance(np.zeros(d), np.eye(d), np.full(d, 0.5), 4 * np.eye(d)) == pytest.approx(2 + d)


def test_fvd_of_a_set_with_itself_is_zero():
    stats = FeatureStats().update(_features(300))
    assert abs(fvd_from_stats(stats, stats)) < 1e-8
    few = FeatureStats().update(_features(10))  # fewer videos than dims: singular covariance
    assert abs(fvd_from_stats(few, few)) < 1e-4


def test_fvd_grows_with_noise():
    real, base = _features(400), _features(400, seed=3)  # two samples of one distribution
    noise = np.random.default_rng(2).normal(size=base.shape)
    values = []
    for sigma in (0.0, 1.0, 2.0, 4.0, 8.0):
        fake = base + sigma * noise
        values.append(frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False)))
    assert values[0] < 1.0  # sampling error only
    assert values == sorted(values) and values[-1] > 100 * values[1]


def test_frechet_refuses_invalid_covariances():
    d = 4
    with pytest.raises(PvdmError, match="imaginary"):
        frechet_distance(np.zeros(d), np.eye(d), np.zeros(d), -np.eye(d))
    with pytest.raises(BadInputError, match="shape"):
        frechet_distance(np.zeros(d), np.eye(d), np.zeros(d + 1), np.eye(d + 1))
    with pytest.raises(PvdmError, match="NaN"):
        frechet_distance(np.full(d, np.nan), np.eye(d), np.zeros(d), np.eye(d))


def test_ddof_conventions_differ_as_expected():
    a, b = _features(64), _features(64, seed=1, shift=0.5)
    sa, sb = FeatureStats().update(a), FeatureStats().update(b)
    unbiased, stylegan_v = fvd_from_stats(sa, sb, ddof=1), fvd_from_stats(sa, sb, ddof=0)
    assert stylegan_v < unbiased and unbiased / stylegan_v < 1.05


def _mmd_loops(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kernel_video_distance():
    x, y = _features(7) / 10, _features(9, seed=1, shift=1.0) / 10
    assert kernel_video_distance(x, y) == pytest.approx(_mmd_loops(x, y), rel=1e-10)
    real = _features(300) / 10
    same = kernel_video_distance(real, _features(300, seed=5) / 10)
    shifts = [kernel_video_distance(real, _features(300, seed=5, shift=s) / 10) for s in (0.5, 1.0, 2.0)]
    assert abs(same) < shifts[0] < shifts[1] < shifts[2]
    with pytest.raises(BadInputError):
        kernel_video_distance(real[:1], real)


# ---------------------------------------------------------------- feature loop


def test_compute_features_batches_and_reports_progress():
    def extractor(x: torch.Tensor) -> torch.Tensor:  # stands in for I3D: (B, 3, T, 224, 224) -> (B, 3)
        assert x.shape[1:] == (3, 4, 224, 224)
        return x.mean(dim=(2, 3, 4))

    clips = [np.full((4, 64 + 8 * i, 80, 3), 50 * i, np.uint8) for i in range(5)]  # mixed sizes
    stats, done = FeatureStats(keep_features=True), []
    feats = compute_features(extractor, iter(clips), batch_size=2, stats=stats, progress_callback=done.append)
    assert feats.shape == (5, 3) and done == [2, 4, 5]
    np.testing.assert_allclose(feats[:, 0], [50 * i / 127.5 - 1 for i in range(5)], atol=1e-6)
    np.testing.assert_array_equal(stats.features, feats)
    with pytest.raises(BadInputError, match="frame counts"):
        compute_features(extractor, [clips[0], np.zeros((5, 64, 64, 3), np.uint8)], batch_size=2)
