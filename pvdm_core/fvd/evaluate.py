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
statistics made under another protocol (frames, resize, detector, BatchNorm eps, AMP; the
weights digest once I3D is loaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pvdm_core import distributed as dist
from pvdm_core.atomic import atomic_path
from pvdm_core.device import DeviceChoice
from pvdm_core.errors import BadInputError
from pvdm_core.fvd.clips import check_single_video
from pvdm_core.fvd.collect import Collected, Progress, collect_features
from pvdm_core.fvd.detector import with_precision
from pvdm_core.fvd.distance import fvd_from_stats, kernel_video_distance
from pvdm_core.fvd.options import FVDOptions, validate_options
from pvdm_core.fvd.protocol import PROTOCOL_KEYS, check_run_protocol, make_protocol
from pvdm_core.fvd.sources import Source, open_source
from pvdm_core.fvd.stats import FeatureStats
from pvdm_core.metrics.i3d_weights import load_i3d
from pvdm_core.progress import log

SIDES = ("REAL", "FAKE")


def _check_kept_features(side: str, source: Source, flag: str) -> None:
    if source.is_stats and not source.stats.keep_features:
        raise BadInputError(f"{flag} needs per-video features, and {side} ({source.path}) is a statistics file "
                            "holding only mean and covariance; pass the videos instead")


def _check_stats(sources: dict[str, Source], protocol: dict[str, Any], keys: tuple[str, ...]) -> None:
    for side, src in sources.items():
        if src.is_stats:
            check_run_protocol(side, src.path, src.stats.protocol, protocol, keys)


def _side_stats(source: Source, collected: Collected | None, protocol: dict, opts: FVDOptions,
                side: str) -> FeatureStats:
    if source.is_stats:
        return source.stats
    if collected.features.shape[0] == 0:
        first = f": {collected.skipped[0][1]}" if collected.skipped else ""
        raise BadInputError(f"{side} ({source.path}): no usable video ({len(collected.skipped)} skipped{first})")
    info = {"source": str(source.path), "stride": opts.stride, "clip": opts.clip}
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
    sources = dict(zip(SIDES, (open_source(real), open_source(fake))))
    for flag, wanted in (("--kvd", opts.kvd), ("--save-features", opts.save_features is not None)):
        if wanted:
            for side, src in sources.items():
                _check_kept_features(side, src, flag)
    protocol = make_protocol(opts.frames, opts.resize, opts.detector, opts.bn_eps, "", amp=amp)
    _check_stats(sources, protocol, tuple(k for k in PROTOCOL_KEYS if k != "weights_sha256"))
    for side, src in sources.items():
        check_single_video(side, src, opts)
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

    # 3. features, side by side
    collected: dict[str, Collected | None] = dict.fromkeys(SIDES)
    for side, src in sources.items():
        if not src.is_stats:
            collected[side] = collect_features(src, opts, with_precision(fn, dev, opts.amp), dev, progress, side.lower())
            _report_skipped(side, collected[side].skipped)

    # 4. statistics and distances
    stats = {side: _side_stats(src, collected[side], protocol, opts, side) for side, src in sources.items()}
    result: dict[str, Any] = {
        "fvd": fvd_from_stats(stats["REAL"], stats["FAKE"], ddof=opts.ddof), "n_real": stats["REAL"].n,
        "n_fake": stats["FAKE"].n, "frames": opts.frames, "resolution": protocol["resolution"],
        "resize": opts.resize, "detector": opts.detector, "weights_sha256": digest, "ddof": opts.ddof,
        "bn_eps": protocol["bn_eps"], "amp": amp, "stride": opts.stride, "clip": opts.clip, "seed": opts.seed,
        "skipped_real": len(collected["REAL"].skipped) if collected["REAL"] else 0,
        "skipped_fake": len(collected["FAKE"].skipped) if collected["FAKE"] else 0,
    }
    features = None
    if opts.kvd or opts.save_features:
        features = {side: _side_features(src, collected[side]) for side, src in sources.items()}
    if opts.kvd:
        result["kvd"] = kernel_video_distance(features["REAL"][0], features["FAKE"][0])

    # 5. files
    _write_files(result, stats, features, opts)
    return result
