"""The DataLoader dataset that decodes one clip per video, in worker processes.

A video that cannot give a clip (too short, unreadable) is not an error here: the item
carries the reason, and the caller skips and counts it (or fails with --strict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pvdm_core.base.errors import BadInputError, ClipTooShortError
from pvdm_core.evaluation.fvd.arrays import open_array
from pvdm_core.evaluation.fvd.options import FVDOptions, clip_span, clip_start
from pvdm_core.evaluation.fvd.sources import Source, VideoRef
from pvdm_core.io.video_io import count_frames, read_video


def too_short(label: str, have: int, opts: FVDOptions) -> ClipTooShortError:
    need = clip_span(opts.frames, opts.stride)
    return ClipTooShortError(f"{label}: too short: a {opts.frames}-frame clip with stride {opts.stride} needs "
                             f"{need} frames, it has {have}", have=have, need=need)


class ClipDataset(Dataset):
    """Item k -> (video index, uint8 clip (T, H, W, C) tensor or None, skip reason or None)."""

    def __init__(self, refs: list[VideoRef], indices: list[int], opts: FVDOptions):
        self.refs, self.indices, self.opts = refs, indices, opts
        self._arrays: dict[tuple[Path, str | None], np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:  # workers re-open (memory-map) arrays instead of receiving copies
        return {**self.__dict__, "_arrays": {}}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor | None, str | None]:
        i = self.indices[k]
        try:
            return i, torch.from_numpy(self.load(self.refs[i], i)), None
        except BadInputError as e:
            return i, None, str(e)

    def _array(self, ref: VideoRef) -> np.ndarray:
        if ref.index is None:  # one small video per file: not worth caching
            return open_array(ref.path, ref.key)
        cache_key = (ref.path, ref.key)
        if cache_key not in self._arrays:
            self._arrays[cache_key] = open_array(ref.path, ref.key)
        return self._arrays[cache_key][ref.index]

    def load(self, ref: VideoRef, index: int) -> np.ndarray:
        """Video `index`'s clip as (T, H, W, C) uint8; raises BadInputError (ClipTooShortError) if it has none."""
        opts = self.opts
        span = clip_span(opts.frames, opts.stride)
        if ref.is_array:
            video = self._array(ref)
            if video.shape[0] < span:
                raise too_short(ref.label, video.shape[0], opts)
            start = clip_start(video.shape[0], opts, index)
            return np.array(video[start : start + span : opts.stride])  # a copy
        if opts.clip == "first":
            start = 0
        else:  # the window depends on the length: count first (frame folders: a listing)
            n = count_frames(ref.path)
            if n < span:
                raise too_short(ref.label, n, opts)
            start = clip_start(n, opts, index)
        try:
            return read_video(ref.path, start, opts.frames, opts.stride)
        except ClipTooShortError as e:
            raise too_short(ref.label, e.have, opts) from None


def as_is(batch: Any) -> Any:
    """DataLoader collate for batch_size=None: items as they are."""
    return batch


def check_single_video(side: str, source: Source, opts: FVDOptions) -> None:
    """A side of one video must give a full clip: decoded now, in seconds, not found out after
    the other side's I3D pass (an hour for 2,048 videos). Folders keep skipping bad videos."""
    if source.is_stats or len(source.refs) != 1:
        return
    try:
        ClipDataset(source.refs, [0], opts).load(source.refs[0], 0)
    except BadInputError as e:
        raise BadInputError(f"{side}: {e}") from None
