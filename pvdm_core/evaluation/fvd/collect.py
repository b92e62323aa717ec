"""Features of one side's videos, one clip each, in rounds shared by index across ranks.

Decoding runs in DataLoader workers; I3D runs batched on the device. Under torchrun each
rank takes videos i = rank (mod world) of every round; per-video features are gathered and
ordered by video index, so the result does not depend on the number of processes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from pvdm_core.base import distributed as dist
from pvdm_core.base.errors import BadInputError
from pvdm_core.evaluation.fvd.clips import ClipDataset, as_is
from pvdm_core.evaluation.fvd.features import compute_features
from pvdm_core.evaluation.fvd.options import FVDOptions
from pvdm_core.evaluation.fvd.sources import Source, VideoRef

Extractor = Callable[[torch.Tensor], torch.Tensor]
# progress(description, total) -> advance(n): the caller's progress display (a rich bar in the CLI).
Progress = Callable[[str, int], Callable[[int], None]]


@dataclass
class Collected:
    """Per-video features of one side, in video order, and the videos skipped."""

    features: np.ndarray  # (N, D) float64
    labels: list[str]
    skipped: list[tuple[str, str]]  # (video, reason)


def default_workers(device: torch.device) -> int:
    """CPU: I3D (~0.7 s a clip) dwarfs decoding, so decode inline; GPU: decoding is the bottleneck."""
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def _extract_shard(refs: list[VideoRef], indices: list[int], opts: FVDOptions, extract: Extractor,
                   device: torch.device,
                   advance: Callable[[int], None] | None) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Features of videos `indices` (this rank's share of a round), and the skipped ones."""
    feats: dict[int, np.ndarray] = {}
    skipped: dict[int, str] = {}
    if not indices:
        return feats, skipped
    workers = default_workers(device) if opts.workers is None else opts.workers
    loader = DataLoader(ClipDataset(refs, indices, opts), batch_size=None, collate_fn=as_is,
                        num_workers=min(workers, len(indices)), pin_memory=device.type == "cuda",
                        prefetch_factor=4 if workers else None)
    ok: list[int] = []
    single = dist.world_size() == 1

    def clips() -> Iterator[torch.Tensor]:
        for i, clip, reason in loader:
            if clip is None:
                if opts.strict and single:  # with several ranks every rank raises after the gather
                    raise BadInputError(f"{reason} (--strict)")
                skipped[i] = reason
                continue
            ok.append(i)
            yield clip.to(device, non_blocking=True)  # resize on the device, from uint8

    done = [0]

    def on_batch(n: int) -> None:
        if advance is not None:
            advance(n - done[0])
        done[0] = n

    out = compute_features(extract, clips(), batch_size=opts.batch_size, resize=opts.resize,
                           progress_callback=on_batch)
    for row, i in enumerate(ok):
        feats[i] = out[row]
    return feats, skipped


def collect_features(source: Source, opts: FVDOptions, extract: Extractor, device: torch.device | str = "cpu",
                     progress: Progress | None = None, side: str = "videos") -> Collected:
    """Features of the first `opts.num_videos` usable videos of `source`, one clip each.

    Works in rounds: a round takes as many next videos as clips are still missing, shared by
    index across ranks; skipped videos are made up for by the next round. The result is the
    first N usable videos in order, whatever the world size.
    """
    device = torch.device(device)
    refs = source.refs
    target = min(opts.num_videos, len(refs))
    ws, rk = dist.world_size(), dist.rank()
    advance = progress(side, math.ceil(target / ws)) if progress is not None else None
    feats: dict[int, np.ndarray] = {}
    skipped: dict[int, str] = {}
    nxt = 0
    while len(feats) < target and nxt < len(refs):
        round_ = list(range(nxt, min(len(refs), nxt + target - len(feats))))
        nxt = round_[-1] + 1
        local = _extract_shard(refs, round_[rk::ws], opts, extract, device, advance)
        for part_feats, part_skipped in dist.all_gather_object(local):
            feats.update(part_feats)
            skipped.update(part_skipped)
        if opts.strict and skipped:
            raise BadInputError(f"{skipped[min(skipped)]} (--strict)")
    order = sorted(feats)
    features = np.stack([feats[i] for i in order]) if order else np.zeros((0, 0))
    return Collected(features, [refs[i].label for i in order], [(refs[i].label, skipped[i]) for i in sorted(skipped)])
