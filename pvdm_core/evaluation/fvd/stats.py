"""Streaming feature statistics (mean and covariance in float64) and their .npz files.

A statistics file carries the protocol it was computed under (`protocol.make_protocol`), so
statistics from different settings refuse to be compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pvdm_core.base.atomic import atomic_path
from pvdm_core.base.errors import BadInputError, PvdmError
from pvdm_core.evaluation.fvd.arrays import npz_members
from pvdm_core.evaluation.fvd.protocol import FEATURE_KEYS

STATS_FORMAT = 1
STATS_MEMBERS = {"mean.npy", "m2.npy", "protocol.npy"}


def is_stats_file(path: Path) -> bool:
    """An .npz written by `FeatureStats.save` (told apart from video arrays by its members)."""
    return path.suffix.lower() == ".npz" and STATS_MEMBERS <= set(npz_members(path))


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
