"""`pvdm eval-fvd`: FVD (and optionally KVD) between two sets of videos or statistics.

Protocol (StyleGAN-V / PVDM, spec §3): one clip of `frames` frames per video, frames
`stride` apart; the window starts at frame 0 (--clip first) or at a start drawn from a
generator seeded with (seed, video index) (--clip random); videos are listed in natural
order and the first `num_videos` that hold a full clip are used (too-short or unreadable
videos are skipped and counted; strict=True makes them fatal). Clips go through
`preprocess_for_i3d` and I3D (`load_i3d`); features stream into `FeatureStats`.

Both sides are checked before the detector is loaded, so bad input fails in seconds, not
after the other side's I3D pass: options, paths, folders holding at least one video
(`sources`), a side of one video decoding a full clip (`clips.check_single_video`), and
statistics made under another protocol (frames, resize, detector, BatchNorm eps, AMP, the
clips' stride and window, REAL's split; the weights digest once I3D is loaded).

With --runs N the real statistics are computed once and N fake sets are scored against them
(`runs.fake_sets`); the result holds each run, their mean and standard deviation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pvdm_core.base import distributed as dist
from pvdm_core.base.atomic import atomic_path
from pvdm_core.base.device import DeviceChoice
from pvdm_core.base.errors import BadInputError
from pvdm_core.base.progress import log
from pvdm_core.evaluation.fvd.clips import check_single_video
from pvdm_core.evaluation.fvd.collect import Collected, Progress, collect_features
from pvdm_core.evaluation.fvd.detector import with_precision
from pvdm_core.evaluation.fvd.distance import fvd_from_stats, kernel_video_distance
from pvdm_core.evaluation.fvd.options import FVDOptions, side_options, validate_options
from pvdm_core.evaluation.fvd.protocol import PROTOCOL_KEYS, check_run_protocol, make_protocol
from pvdm_core.evaluation.fvd.runs import check_runs, fake_sets, summarize
from pvdm_core.evaluation.fvd.sources import Source, open_source, real_videos
from pvdm_core.evaluation.fvd.stats import FeatureStats
from pvdm_core.evaluation.metrics.i3d_weights import load_i3d

SIDES = ("REAL", "FAKE")


def _check_kept_features(side: str, source: Source, flag: str) -> None:
    if source.is_stats and not source.stats.keep_features:
        raise BadInputError(f"{flag} needs per-video features, and {side} ({source.path}) is a statistics file "
                            "holding only mean and covariance; pass the videos instead")


def _check_stats(sources: dict[str, Source], protocol: dict[str, Any], keys: tuple[str, ...]) -> None:
    for side, src in sources.items():
        if src.is_stats:
            check_run_protocol(side, src.path, src.stats.protocol, protocol, keys)


# Statistics files from before these keys were recorded were made with these values.
SAMPLING_DEFAULTS = {"stride": 1, "clip": "first", "real_split": "all"}


def _check_sampling(sources: dict[str, Source], opts: FVDOptions) -> None:
    """Statistics files must have sampled their clips as this run does: stride, window, REAL's split."""
    for side, src in sources.items():
        if not src.is_stats:
            continue
        keys = ("stride", "clip") if side == "FAKE" or opts.real_split == "convention" else ("stride", "clip", "real_split")
        run = {"stride": opts.stride, "clip": side_options(opts, side).clip, "real_split": opts.real_split}
        check_run_protocol(side, src.path, {**SAMPLING_DEFAULTS, **src.stats.protocol}, run, keys)


def _side_stats(source: Source, collected: Collected | None, protocol: dict, opts: FVDOptions,
                side: str) -> FeatureStats:
    if source.is_stats:
        return source.stats
    if collected.features.shape[0] == 0:
        first = f": {collected.skipped[0][1]}" if collected.skipped else ""
        raise BadInputError(f"{side} ({source.path}): no usable video ({len(collected.skipped)} skipped{first})")
    opts = side_options(opts, side)
    info = {"source": str(source.path), "stride": opts.stride, "clip": opts.clip, "ddof": opts.ddof,
            "protocol": opts.protocol}
    if side == "REAL":
        info["real_split"] = source.split
    if opts.clip == "random":
        info["seed"] = opts.seed
    return FeatureStats({**protocol, **info}, keep_features=True).update(collected.features)


def _side_features(source: Source, collected: Collected | None) -> tuple[np.ndarray, list[str]]:
    if collected is not None:
        return collected.features, collected.labels
    feats = source.stats.features
    return feats, [f"{source.path}#{i}" for i in range(feats.shape[0])]


def save_features(path: Path, real: tuple[np.ndarray, list[str]], fake: tuple[np.ndarray, list[str]]) -> Path:
    """Per-video features: keys real, fake (N, D) and real_paths, fake_paths (N,) strings."""
    arrays = {"real": real[0], "fake": fake[0],
              "real_paths": np.array(real[1], dtype=str), "fake_paths": np.array(fake[1], dtype=str)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def _report_skipped(side: str, skipped: list[tuple[str, str]], limit: int = 5) -> None:
    if not skipped or not dist.is_main():
        return
    log(f"{side}: skipped {len(skipped)} video(s) without a full clip (--strict makes this fatal):")
    for _, reason in skipped[:limit]:
        log(f"  {reason}")
    if len(skipped) > limit:
        log(f"  ... and {len(skipped) - limit} more")


def _open_checked(real: str | Path, fake: str | Path, opts: FVDOptions,
                  amp: str | None) -> tuple[dict[str, Source], dict[str, Any]]:
    """Both sides opened and checked against the options, and this run's protocol (weights digest still empty)."""
    validate_options(opts)
    sources = dict(zip(SIDES, (real_videos(real, opts.real_split), open_source(fake))))
    check_runs(sources["FAKE"], opts)
    for flag, wanted in (("--kvd", opts.kvd), ("--save-features", opts.save_features is not None)):
        if wanted:
            for side, src in sources.items():
                _check_kept_features(side, src, flag)
    protocol = make_protocol(opts.frames, opts.resize, opts.detector, opts.bn_eps, "", amp=amp)
    _check_stats(sources, protocol, tuple(k for k in PROTOCOL_KEYS if k != "weights_sha256"))
    _check_sampling(sources, opts)
    for side, src in sources.items():
        check_single_video(side, src, side_options(opts, side))
    return sources, protocol


def _write_files(result: dict[str, Any], stats: dict[str, FeatureStats], features: dict | None,
                 opts: FVDOptions) -> None:
    """Statistics and features files, on rank 0 only: every rank holds the same gathered features."""
    if dist.is_main():
        for side, path in (("REAL", opts.save_stats_real), ("FAKE", opts.save_stats_fake)):
            if path is not None:
                result[f"stats_{side.lower()}"] = str(stats[side].save(path))
        if opts.save_features is not None:
            result["features"] = str(save_features(Path(opts.save_features), features["REAL"], features["FAKE"]))
    dist.barrier()


def _distances(real: FeatureStats, fake: FeatureStats, real_feats: np.ndarray | None,
               fake_feats: np.ndarray | None, opts: FVDOptions) -> dict[str, Any]:
    out: dict[str, Any] = {"fvd": fvd_from_stats(real, fake, ddof=opts.ddof), "n_fake": fake.n}
    if opts.kvd:
        out["kvd"] = kernel_video_distance(real_feats, fake_feats)
    return out


def evaluate_fvd(real: str | Path, fake: str | Path, opts: FVDOptions, device: DeviceChoice,
                 progress: Progress | None = None) -> dict[str, Any]:
    """FVD between REAL and FAKE (folders, videos, arrays or statistics files); see the module docstring.

    `progress(description, total)` returns an `advance(n)` callback (the CLI's rich bar).
    Returns the result dict printed by `pvdm eval-fvd --json`; files are written on rank 0.
    """
    # 1. options and inputs, checked before anything slow
    dev = dist.device_for_rank(device.device)
    amp = "bf16" if opts.amp and dev.type == "cuda" else None
    sources, protocol = _open_checked(real, fake, opts, amp)
    if opts.amp and amp is None and dist.is_main():
        log(f"--amp applies to CUDA only; running fp32 on {dev.type}")

    # 2. the detector (only if a side has videos); its digest completes the protocol
    if any(not s.is_stats for s in sources.values()):
        fn, digest = load_i3d(opts.i3d_weights, opts.detector, opts.bn_eps, dev)
    else:
        fn, digest = None, sources["REAL"].stats.protocol.get("weights_sha256", "")
    protocol["weights_sha256"] = digest
    _check_stats(sources, protocol, ("weights_sha256",))

    # 3. features: REAL once, FAKE once per run
    extract = with_precision(fn, dev, opts.amp) if fn is not None else None
    collected: dict[str, Collected | None] = dict.fromkeys(SIDES)
    if not sources["REAL"].is_stats:
        collected["REAL"] = collect_features(sources["REAL"], opts, extract, dev, progress, "real")
        _report_skipped("REAL", collected["REAL"].skipped)
    runs_fake = fake_sets(sources["FAKE"], opts, extract, dev, progress)
    collected["FAKE"] = runs_fake[0]
    if runs_fake[0] is not None:
        _report_skipped("FAKE", runs_fake[0].skipped)

    # 4. statistics and distances
    stats = {"REAL": _side_stats(sources["REAL"], collected["REAL"], protocol, opts, "REAL")}
    real_feats = _side_features(sources["REAL"], collected["REAL"])[0] if opts.kvd else None
    runs = []
    for fake_set in runs_fake:
        stats["FAKE"] = _side_stats(sources["FAKE"], fake_set, protocol, opts, "FAKE")
        fake_feats = _side_features(sources["FAKE"], fake_set)[0] if opts.kvd else None
        runs.append(_distances(stats["REAL"], stats["FAKE"], real_feats, fake_feats, opts))
    result: dict[str, Any] = {
        "protocol": opts.protocol, **summarize(runs), "n_real": stats["REAL"].n, "frames": opts.frames,
        "resolution": protocol["resolution"], "resize": opts.resize, "detector": opts.detector,
        "weights_sha256": digest, "ddof": opts.ddof, "bn_eps": protocol["bn_eps"], "amp": amp, "stride": opts.stride,
        "clip": opts.clip, "fake_clip": side_options(opts, "FAKE").clip, "seed": opts.seed,
        "real_split": sources["REAL"].split,
        "skipped_real": len(collected["REAL"].skipped) if collected["REAL"] else 0,
        "skipped_fake": len(runs_fake[0].skipped) if runs_fake[0] else 0,
    }
    features = None
    if opts.save_features:
        features = {side: _side_features(src, collected[side]) for side, src in sources.items()}

    # 5. files
    _write_files(result, stats, features, opts)
    return result
