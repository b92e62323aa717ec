"""FVD during training (`diffusion_train.fvd_every`): EMA samples against a real-statistics file.

The statistics file (`pvdm eval-fvd REAL FAKE --save-stats-real FILE`, or any protocol's) fixes
the protocol: clip frames and stride, resize, detector, BatchNorm eps, covariance normaliser
and the I3D weights, whose digest must match. Every evaluation samples the same seeds
(run.seed + i), so the curve follows the model, not the draw. With few videos (16, as the PVDM
release's in-training FVD) the number is noisy and not comparable with 2,048-video FVD: a
trend to watch, as the release's README says of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pvdm_core.artifacts.load import LoadedDiffusion
from pvdm_core.base.config import DiffusionTrainConfig, SampleConfig
from pvdm_core.base.device import DeviceChoice
from pvdm_core.base.errors import BadInputError
from pvdm_core.evaluation.fvd.detector import with_precision
from pvdm_core.evaluation.fvd.distance import fvd_from_stats
from pvdm_core.evaluation.fvd.features import compute_features
from pvdm_core.evaluation.fvd.options import clip_span
from pvdm_core.evaluation.fvd.protocol import check_run_protocol, make_protocol
from pvdm_core.evaluation.fvd.stats import FeatureStats, is_stats_file
from pvdm_core.evaluation.metrics.i3d_weights import load_i3d
from pvdm_core.generate.sample import generate

BATCH = 8  # videos sampled together


class TrainingFVD:
    """`fvd(model, sample_cfg, seed)`: FVD of `num_videos` samples of `model` against the file's statistics."""

    def __init__(self, stats_path: str | Path, num_videos: int, device: DeviceChoice):
        path = Path(stats_path)
        self.real, self.num_videos, self.device = FeatureStats.load(path), num_videos, device
        p = self.real.protocol
        self.frames, self.stride, self.resize, self.ddof = p["frames"], p.get("stride", 1), p["resize"], p.get("ddof", 1)
        fn, digest = load_i3d(None, p["detector"], p["bn_eps"] or 1e-5, device.device)
        check_run_protocol("REAL", path, p, {"weights_sha256": digest}, ("weights_sha256",))
        self.extract = with_precision(fn, device.device, amp=False)
        self.protocol = make_protocol(self.frames, self.resize, p["detector"], p["bn_eps"], digest)

    def __call__(self, model: LoadedDiffusion, sample_cfg: SampleConfig, seed: int) -> float:
        span = clip_span(self.frames, self.stride)
        videos: list[list[np.ndarray]] = [[] for _ in range(self.num_videos)]  # frames (H, W, 3) uint8
        for b in range(0, self.num_videos, BATCH):
            chunk = range(b, min(b + BATCH, self.num_videos))
            labels = [i % len(model.class_names) for i in chunk] if model.class_names else None
            generate(model, [videos[i] for i in chunk], [seed + i for i in chunk], span, sample_cfg, self.device,
                     labels=labels)
        clips = (torch.from_numpy(np.stack(v[::self.stride])) for v in videos)  # (frames, H, W, 3) each
        feats = compute_features(self.extract, clips, batch_size=BATCH, resize=self.resize)
        return fvd_from_stats(self.real, FeatureStats(self.protocol).update(feats), ddof=self.ddof)


def training_fvd(tc: DiffusionTrainConfig, device: DeviceChoice, load: bool = True) -> TrainingFVD | None:
    """The in-training FVD the config asks for (None: off, or not `load`ed on this rank).

    The settings are checked on every rank, so that a bad one stops all ranks alike.
    """
    if not tc.fvd_every and tc.fvd_stats is None:
        return None
    if not tc.fvd_every or tc.fvd_stats is None:
        raise BadInputError("in-training FVD needs both diffusion_train.fvd_every (steps) and diffusion_train.fvd_stats "
                            f"(a real-statistics file); got fvd_every={tc.fvd_every}, fvd_stats={tc.fvd_stats}")
    checks = [(tc.fvd_every > 0, f"diffusion_train.fvd_every must be positive, not {tc.fvd_every}"),
              (tc.fvd_videos >= 2, f"diffusion_train.fvd_videos must be at least 2 (a covariance), not {tc.fvd_videos}"),
              (Path(tc.fvd_stats).is_file() and is_stats_file(Path(tc.fvd_stats)),
               f"diffusion_train.fvd_stats={tc.fvd_stats}: not an FVD statistics file (write one with "
               "`pvdm eval-fvd REAL FAKE --save-stats-real FILE`)")]
    for ok, message in checks:
        if not ok:
            raise BadInputError(message)
    return TrainingFVD(tc.fvd_stats, tc.fvd_videos, device) if load else None
