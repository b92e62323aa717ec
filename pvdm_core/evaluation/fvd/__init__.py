"""Fréchet Video Distance (Unterthiner et al. 2018) as computed by DIGAN, PVDM and StyleGAN-V.

Pipeline: a side (folder, video, array or statistics file; `sources`) -> one uint8 clip per
video, decoded in DataLoader workers (`clips`, `arrays`) -> `preprocess_for_i3d` and I3D
Kinetics-400 logits averaged over time (`features`, `detector`; the network is
`pvdm_core.models.i3d`, its weights `pvdm_core.evaluation.metrics.i3d_weights`), per-rank
rounds under torchrun (`collect`) -> `FeatureStats`, mean and covariance streamed in float64 (`stats`)
-> `frechet_distance` / `kernel_video_distance` (`distance`). `evaluate.evaluate_fvd` drives
it for `pvdm eval-fvd`, several fake sets with `runs`; `protocol` names the settings that make
two statistics comparable; `named` the published protocols (fvd2048_16f, ...) with their
sources; `tracking` scores EMA samples during diffusion training.

Submodules import each other by their full names, never from this package, so this file's
re-exports add no import cycle.
"""

from pvdm_core.evaluation.fvd.collect import Collected, collect_features
from pvdm_core.evaluation.fvd.detector import precision
from pvdm_core.evaluation.fvd.distance import frechet_distance, fvd_from_stats, kernel_video_distance
from pvdm_core.evaluation.fvd.evaluate import evaluate_fvd
from pvdm_core.evaluation.fvd.features import compute_features, preprocess_for_i3d
from pvdm_core.evaluation.fvd.options import FVDOptions, clip_start, validate_options
from pvdm_core.evaluation.fvd.protocol import FEATURE_KEYS, RESIZE_MODES, make_protocol
from pvdm_core.evaluation.fvd.sources import Source, VideoRef, open_source
from pvdm_core.evaluation.fvd.stats import FeatureStats
from pvdm_core.evaluation.metrics.i3d_weights import load_i3d

__all__ = [
    "FEATURE_KEYS", "RESIZE_MODES", "Collected", "FVDOptions", "FeatureStats", "Source", "VideoRef", "clip_start",
    "collect_features", "compute_features", "evaluate_fvd", "frechet_distance", "fvd_from_stats",
    "kernel_video_distance", "load_i3d", "make_protocol", "open_source", "precision", "preprocess_for_i3d",
    "validate_options",
]
