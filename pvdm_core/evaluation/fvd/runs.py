"""Several fake sets scored against one real set (`--runs N`), as StyleGAN-V's `num_runs`.

StyleGAN-V's calc_metric repeats a metric num_runs times, each run on new generator samples
against cached real statistics, and reports every run, the mean and np.std (1/N). pvdm draws
the fake sets from FAKE's videos in one of two ways (`FVDOptions.run_sets`):
  - subsets: run k takes the k-th block of `num_videos` usable videos (disjoint sets, the
    counterpart of new samples; FAKE needs runs x num_videos videos);
  - seeds: every run takes the same videos, with clip windows drawn from seed + k (FAKE's
    clip mode must be random).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from pvdm_core.base.errors import BadInputError
from pvdm_core.evaluation.fvd.collect import Collected, Extractor, Progress, collect_features
from pvdm_core.evaluation.fvd.options import FVDOptions, side_options
from pvdm_core.evaluation.fvd.sources import Source


def check_runs(fake: Source, opts: FVDOptions) -> None:
    """Before any I3D work: several runs need videos, enough of them for disjoint subsets, and one fake set to save."""
    if opts.runs == 1:
        return
    if fake.is_stats:
        raise BadInputError(f"--runs {opts.runs} draws fake sets from videos; FAKE ({fake.path}) is a statistics file")
    if opts.save_stats_fake is not None or opts.save_features is not None:
        raise BadInputError("--save-stats-fake and --save-features keep one fake set; use them with --runs 1")
    need = opts.runs * opts.num_videos
    if opts.run_sets == "subsets" and len(fake.refs) < need:
        raise BadInputError(f"--runs {opts.runs} on disjoint subsets of {opts.num_videos} videos needs {need} fake "
                            f"videos; FAKE ({fake.path}) has {len(fake.refs)}: sample more, lower --num-videos, "
                            "or pass --run-sets seeds (same videos, other clip windows)")


def fake_sets(fake: Source, opts: FVDOptions, extract: Extractor | None, device: torch.device,
              progress: Progress | None) -> list[Collected | None]:
    """FAKE's features for each run ([None] for a statistics file)."""
    if fake.is_stats:
        return [None]
    base = side_options(opts, "FAKE")
    if opts.runs == 1:
        return [collect_features(fake, base, extract, device, progress, "fake")]
    if opts.run_sets == "seeds":
        return [collect_features(fake, dataclasses.replace(base, seed=opts.seed + k), extract, device, progress,
                                 f"fake run {k + 1}") for k in range(opts.runs)]
    n = opts.num_videos
    whole = collect_features(fake, dataclasses.replace(base, num_videos=opts.runs * n), extract, device, progress,
                             "fake")
    if whole.features.shape[0] < opts.runs * n:
        raise BadInputError(f"--runs {opts.runs} on disjoint subsets needs {opts.runs * n} usable fake videos; FAKE "
                            f"gave {whole.features.shape[0]} ({len(whole.skipped)} skipped)")
    return [Collected(whole.features[k * n:(k + 1) * n], whole.labels[k * n:(k + 1) * n],
                      whole.skipped if k == 0 else []) for k in range(opts.runs)]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run: its values. Several: the mean of each metric under its name, `<metric>_std` (np.std,
    1/N, as StyleGAN-V) and every run."""
    out: dict[str, Any] = {"num_runs": len(runs), **runs[0]}
    if len(runs) == 1:
        return out
    for key in ("fvd", "kvd"):
        if key in runs[0]:
            values = np.array([r[key] for r in runs])
            out[key], out[f"{key}_std"] = float(values.mean()), float(values.std())
    out["runs"] = [{"run": k + 1, **r} for k, r in enumerate(runs)]
    return out
