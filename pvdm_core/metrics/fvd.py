"""Fréchet Video Distance (Unterthiner et al. 2018) as computed by DIGAN, PVDM and StyleGAN-V.

Pipeline: uint8 clips (B, T, H, W, 3) -> `preprocess_for_i3d` (short side bilinear to 224
and center crop, or stretch to 224x224; [-1, 1]) -> I3D Kinetics-400 logits averaged over
time (`load_i3d`) -> `FeatureStats` (mean and covariance, streamed in float64) ->
`frechet_distance`. `kernel_video_distance` is the KID-style polynomial-kernel MMD on the same
features, which needs the per-video features kept (`FeatureStats(keep_features=True)`).

Statistics files (.npz) carry a protocol dict; statistics computed under different settings
(frames, resize, detector, BatchNorm eps, weights) refuse to be compared.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from pvdm_core.atomic import atomic_path
from pvdm_core.errors import BadInputError, PvdmError
from pvdm_core.metrics.i3d_weights import load_i3d  # noqa: F401 - re-exported entry point

RESOLUTION = 224
RESIZE_MODES = ("center-crop", "stretch")
# Protocol keys that change the features; two statistics differing in one are not comparable.
# Other keys (num_videos, dataset, split, clip, ...) are recorded for information only.
FEATURE_KEYS = ("frames", "resolution", "resize", "detector", "bn_eps", "weights_sha256")
STATS_FORMAT = 1

# ---------------------------------------------------------------- 1. preprocessing


def preprocess_for_i3d(frames: torch.Tensor | np.ndarray, resize: str = "center-crop",
                       resolution: int = RESOLUTION) -> torch.Tensor:
    """uint8 clips (B, T, H, W, 3) -> float32 (B, 3, T, 224, 224) in [-1, 1].

    center-crop (PVDM, VideoGPT, DIGAN): bilinear resize (no antialiasing) of the shorter
    side to 224, the longer to ceil(L * 224 / S), then a center crop. stretch (TF FVD,
    TATS): bilinear resize straight to 224x224. Grayscale (..., 1) is repeated to RGB.
    """
    if resize not in RESIZE_MODES:
        raise BadInputError(f"unknown resize {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
    x = torch.as_tensor(frames)
    if x.ndim != 5 or x.shape[-1] not in (1, 3):
        raise BadInputError(f"expected uint8 videos shaped (B, T, H, W, 3); got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise BadInputError(f"expected uint8 videos (0..255); got {x.dtype}")
    b, t, h, w, c = x.shape
    x = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float() / 255.0
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    if resize == "stretch":
        size = (resolution, resolution)
    elif h < w:  # integer ceil: the reference's float ceil can overshoot by one pixel
        size = (resolution, -(-w * resolution // h))
    else:
        size = (-(-h * resolution // w), resolution)
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    x = x[:, :, top:top + resolution, left:left + resolution]
    x = (x - 0.5) * 2.0
    return x.reshape(b, t, 3, resolution, resolution).permute(0, 2, 1, 3, 4).contiguous()


# ---------------------------------------------------------------- 2. features


def compute_features(
    extractor: Callable[[torch.Tensor], torch.Tensor],
    clips: Iterable[torch.Tensor | np.ndarray],
    batch_size: int = 8,
    resize: str = "center-crop",
    stats: FeatureStats | None = None,
    progress_callback: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run `extractor` over uint8 clips (T, H, W, 3), in batches; return (N, D) float64.

    Each clip is preprocessed on its own, so clips of different sizes can share a batch; all
    must have the same number of frames. If `stats` is given, it is updated batch by batch.
    `progress_callback(n_done)` is called after each batch.
    """
    if batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1; got {batch_size}")
    out: list[np.ndarray] = []
    batch: list[torch.Tensor] = []
    done = 0

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        if len({clip.shape[2] for clip in batch}) > 1:
            raise BadInputError(f"clips in one batch have different frame counts: {[c.shape[2] for c in batch]}")
        feats = extractor(torch.cat(batch)).detach().to("cpu", torch.float64).numpy()
        batch.clear()
        if stats is not None:
            stats.update(feats)
        out.append(feats)
        done += feats.shape[0]
        if progress_callback is not None:
            progress_callback(done)

    for clip in clips:
        batch.append(preprocess_for_i3d(torch.as_tensor(clip)[None], resize=resize))
        if len(batch) == batch_size:
            flush()
    flush()
    return np.concatenate(out) if out else np.zeros((0, 0))


# ---------------------------------------------------------------- 3. statistics


class FeatureStats:
    """Streaming mean and covariance of feature vectors, in float64.

    Kept as (n, mean, M2 = sum of outer products of deviations), updated and merged with
    Chan et al.'s pairwise formulas: as exact as two-pass np.cov, no cancellation when the
    mean is large against the spread. keep_features=True also keeps every row (for KVD).
    """

    def __init__(self, protocol: Mapping[str, Any] | None = None, keep_features: bool = False):
        self.protocol: dict[str, Any] = dict(protocol or {})
        self.keep_features = keep_features
        self.n = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._rows: list[np.ndarray] = []

    @property
    def dim(self) -> int | None:
        return None if self._mean is None else self._mean.shape[0]

    def update(self, feats: torch.Tensor | np.ndarray) -> FeatureStats:
        """Add rows (N, D)."""
        if isinstance(feats, torch.Tensor):
            feats = feats.detach().to("cpu", torch.float64).numpy()
        x = np.asarray(feats, dtype=np.float64)
        if x.ndim != 2:
            raise BadInputError(f"features must be (N, D); got shape {x.shape}")
        if not np.isfinite(x).all():
            raise PvdmError("features contain NaN or infinity")
        if self.dim is not None and x.shape[1] != self.dim:
            raise BadInputError(f"features have {x.shape[1]} dims; these statistics have {self.dim}")
        if x.shape[0] == 0:
            return self
        mean = x.mean(axis=0)
        dev = x - mean
        self._combine(x.shape[0], mean, dev.T @ dev)
        if self.keep_features:
            self._rows.append(x.copy())
        return self

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        if self.n == 0:
            self.n, self._mean, self._m2 = n_b, mean_b.copy(), m2_b.copy()
            return
        n = self.n + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (self.n * n_b / n)
        self.n = n

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add `other`'s samples to these statistics (in place); returns self.

        Empty statistics without a protocol take `other`'s protocol.
        """
        if self.n == 0 and not self.protocol:
            self.protocol = dict(other.protocol)
        self.check_compatible(other)
        if other.n == 0:
            return self
        if self.dim is not None and other.dim != self.dim:
            raise BadInputError(f"cannot merge {other.dim}-dim statistics into {self.dim}-dim ones")
        self._combine(other.n, other._mean, other._m2)
        if self.keep_features and other.keep_features:
            self._rows.extend(r.copy() for r in other._rows)
        else:
            self.keep_features, self._rows = False, []
        return self

    @property
    def mean(self) -> np.ndarray:
        if self.n == 0:
            raise BadInputError("no features: the statistics are empty")
        return self._mean.copy()

    def cov(self, ddof: int = 1) -> np.ndarray:
        """Covariance; ddof=1 is the unbiased 1/(N-1) (VideoGPT, PVDM), ddof=0 is StyleGAN-V's 1/N."""
        if self.n - ddof <= 0:
            raise BadInputError(f"covariance with ddof={ddof} needs more than {ddof} videos; have {self.n}")
        return self._m2 / (self.n - ddof)

    @property
    def features(self) -> np.ndarray:
        """All rows, (N, D); only with keep_features=True."""
        if not self.keep_features:
            raise BadInputError("per-video features were not kept (use keep_features=True)")
        return np.concatenate(self._rows) if self._rows else np.zeros((0, self.dim or 0))

    def check_compatible(self, other: FeatureStats) -> None:
        """Raise BadInputError naming every feature-changing protocol setting that differs."""
        diffs = [
            f"{k}: {self.protocol.get(k)!r} vs {other.protocol.get(k)!r}"
            for k in FEATURE_KEYS
            if self.protocol.get(k) != other.protocol.get(k)
        ]
        if self.dim is not None and other.dim is not None and self.dim != other.dim:
            diffs.append(f"feature dims: {self.dim} vs {other.dim}")
        if diffs:
            raise BadInputError("statistics computed under different protocols: " + "; ".join(diffs))

    def save(self, path: str | Path) -> Path:
        """Write to .npz atomically (no pickles: load with allow_pickle=False)."""
        if self.n == 0:
            raise BadInputError("refusing to save empty statistics")
        path = Path(path)
        protocol = {**self.protocol, "num_videos": self.n}
        arrays = {
            "format": np.array(STATS_FORMAT),
            "n": np.array(self.n, dtype=np.int64),
            "mean": self._mean,
            "m2": self._m2,
            "protocol": np.array(json.dumps(protocol, sort_keys=True, allow_nan=False)),
        }
        if self.keep_features:
            arrays["features"] = self.features
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != STATS_FORMAT:
                    raise BadInputError(f"{path}: statistics format {int(z['format'])}, expected {STATS_FORMAT}")
                stats = cls(json.loads(str(z["protocol"])), keep_features="features" in z.files)
                stats.n = int(z["n"])
                stats._mean, stats._m2 = z["mean"].astype(np.float64), z["m2"].astype(np.float64)
                if stats.keep_features:
                    stats._rows = [z["features"].astype(np.float64)]
        except (OSError, KeyError, ValueError) as e:
            raise BadInputError(f"{path}: not a pvdm FVD statistics file ({e})") from e
        d = stats._mean.shape[0]
        if stats.n < 1 or stats._m2.shape != (d, d) or (stats.keep_features and stats._rows[0].shape != (stats.n, d)):
            raise BadInputError(f"{path}: inconsistent statistics (n={stats.n}, mean {stats._mean.shape})")
        return stats


# ---------------------------------------------------------------- 4. distances


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6, imag_tol: float = 1e-3) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the square root by scipy.linalg.sqrtm.

    A singular product gets eps on the diagonals (as pytorch-fid). The square root of a
    product of two PSD matrices has real eigenvalues; an imaginary part larger than
    imag_tol (relative to the real part's largest entry) means invalid covariances and
    raises PvdmError instead of being dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise BadInputError(f"shape mismatch: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise PvdmError(f"{name} contains NaN or infinity")
    diff = mu1 - mu2
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(covmean.imag).max()
        if imag > imag_tol * max(1.0, np.abs(covmean.real).max()):
            raise PvdmError(
                f"Fréchet distance: the matrix square root has an imaginary part of {imag:.3g}; the "
                "covariances are not valid (not symmetric positive semi-definite?)"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    out = scipy.linalg.sqrtm(a)
    return out[0] if isinstance(out, tuple) else out


def fvd_from_stats(real: FeatureStats, fake: FeatureStats, ddof: int = 1) -> float:
    """FVD between two compatible statistics, in the subspace the Gaussians occupy when a covariance is singular.

    With no more videos than feature dims (N <= 400) the covariances are rank-deficient and
    scipy's sqrtm of their product loses accuracy (FVD(A, A) came out -1.6e-3 at N=3). The
    Fréchet distance only involves the span of both covariances and of the mean difference;
    in an orthonormal basis of that span (eigenvectors of S1 + S2 + dd^T above d * eps of the
    largest) it is the same number, and equal statistics give an exactly full-rank problem.
    """
    real.check_compatible(fake)
    dim = real.dim
    if min(real.n, fake.n) > dim:  # N samples span at most N - 1 dims
        return frechet_distance(real.mean, real.cov(ddof), fake.mean, fake.cov(ddof))
    s1, s2 = real.cov(ddof), fake.cov(ddof)
    diff = real.mean - fake.mean
    w, v = np.linalg.eigh(s1 + s2 + np.outer(diff, diff))
    q = v[:, w > max(w.max(), 0.0) * dim * np.finfo(np.float64).eps]
    if q.shape[1] == 0:  # both sets are one repeated point each, at the same place
        return 0.0
    with warnings.catch_warnings():  # "matrix is singular": expected here; imaginary parts are still checked
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return frechet_distance(q.T @ real.mean, q.T @ s1 @ q, q.T @ fake.mean, q.T @ s2 @ q)


def kernel_video_distance(feats_a: np.ndarray, feats_b: np.ndarray, degree: int = 3,
                          gamma: float | None = None, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 with the polynomial kernel k(x, y) = (gamma x.y + coef0)^degree.

    KID's estimator (Bińkowski et al. 2018) on video features, over the full sets (no
    subsets); gamma defaults to 1/D. Near 0 (possibly slightly negative) for equal
    distributions.
    """
    x, y = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise BadInputError(f"features must be (N, D) with equal D; got {x.shape} and {y.shape}")
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise BadInputError(f"kernel distance needs at least 2 videos per side; got {m} and {n}")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (gamma * (a @ b.T) + coef0) ** degree

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2.0 * kxy.mean()
    )


def make_protocol(frames: int, resize: str = "center-crop", detector: str = "pytorch",
                  bn_eps: float | None = 1e-5, weights_sha256: str = "", **info: Any) -> dict[str, Any]:
    """The protocol dict recorded with statistics; `info` adds informational keys."""
    if resize not in RESIZE_MODES:
        raise BadInputError(f"unknown resize {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
    if detector != "pytorch":
        bn_eps = None  # fixed inside the TorchScript file
    out = {"metric": "fvd", "frames": int(frames), "resolution": RESOLUTION, "resize": resize,
           "detector": detector, "bn_eps": bn_eps, "weights_sha256": weights_sha256}
    return {**out, **info}


__all__ = [
    "FEATURE_KEYS", "RESIZE_MODES", "FeatureStats", "compute_features", "frechet_distance",
    "fvd_from_stats", "kernel_video_distance", "load_i3d", "make_protocol", "preprocess_for_i3d",
]
