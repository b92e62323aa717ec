"""Distances between feature distributions: the Fréchet distance (FVD) and the kernel distance (KVD)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from pvdm_core.base.errors import BadInputError, PvdmError
from pvdm_core.evaluation.fvd.stats import FeatureStats


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
