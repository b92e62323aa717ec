"""`pvdm eval-fvd`: FVD (and optionally KVD) between two sets of videos or statistics.

Protocol (StyleGAN-V / PVDM, spec §3): one clip of `frames` frames per video, frames
`stride` apart; the window starts at frame 0 (--clip first) or at a start drawn from a
generator seeded with (seed, video index) (--clip random); videos are listed in natural
order and the first `num_videos` that hold a full clip are used (too-short or unreadable
videos are skipped and counted; strict=True makes them fatal). Clips go through
`preprocess_for_i3d` and I3D (`load_i3d`); features stream into `FeatureStats`.

A side (REAL or FAKE) is one of:
  - a folder, searched recursively: video files and frame folders (`find_videos`), plus
    `.npy`/`.npz` arrays: (T, H, W, 3) is one video (pvdm's npz writer), (N, T, H, W, 3)
    is N videos; statistics files found in a folder are ignored;
  - one video file or frame folder;
  - one `.npy`/`.npz` array (npz: key `video`, else the only/first array);
  - a statistics file written by `save_stats_*` (an npz holding `mean`, `m2`, `protocol`).
Statistics made under another protocol (frames, resize, detector, BatchNorm eps, weights,
AMP) are refused before any video is decoded.

Decoding runs in DataLoader workers (array files are memory-mapped when stored
uncompressed, as np.save/np.savez write them; a compressed (N, T, H, W, 3) npz is loaded
whole by each worker); I3D runs batched, in fp32 (TF32 off) unless `amp`
asks for bf16 autocast on CUDA. Under torchrun each rank takes videos i = rank (mod world)
of every round; per-video features are gathered and ordered by video index, so the result
does not depend on the number of processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pvdm_core import distributed as dist
from pvdm_core.atomic import atomic_path
from pvdm_core.device import DeviceChoice
from pvdm_core.errors import BadInputError
from pvdm_core.metrics.fvd import (FEATURE_KEYS, RESIZE_MODES, FeatureStats, compute_features, 
                                   fvd_from_stats, kernel_video_distance, load_i3d, make_protocol)
from pvdm_core.metrics.i3d_weights import DETECTORS
from pvdm_core.models.i3d import MIN_FRAMES
from pvdm_core.progress import log
from pvdm_core.video_io import IMAGE_EXTS, VIDEO_EXTS, count_frames, find_videos, natural_key, read_video

ARRAY_EXTS = (".npy", ".npz")
CLIP_MODES = ("first", "random")
# Feature-changing settings checked before comparing statistics: fvd.FEATURE_KEYS plus AMP
# (bf16 logits differ from fp32 ones by ~1% relative, ten times the BatchNorm-eps effect).
PROTOCOL_KEYS = (*FEATURE_KEYS, "amp")
STATS_MEMBERS = {"mean.npy", "m2.npy", "protocol.npy"}

# progress(description, total) -> advance(n): the caller's progress display (a rich bar in the CLI).
Progress = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class FVDOptions:
    num_videos: int = 2048  # clips per side (one per video): the first N usable videos, or all
    frames: int = 16  # frames per clip (I3D needs >= 9)
    stride: int = 1  # step between the clip's frames
    clip: str = "first"  # window start: "first" (frame 0) or "random" (from (seed, video index))
    seed: int = 0
    resize: str = "center-crop"  # or "stretch" (TF FVD, TATS)
    ddof: int = 1  # covariance 1/(N - ddof): 1 = VideoGPT/PVDM, 0 = StyleGAN-V
    bn_eps: float = 1e-5  # I3D BatchNorm eps: 1e-5 PyTorch port, 1e-3 TF
    detector: str = "pytorch"  # or "stylegan-v" (TorchScript)
    i3d_weights: str | None = None
    batch_size: int = 8
    workers: int | None = None  # DataLoader decode workers; None = 0 on CPU, min(8, cores) on GPU
    amp: bool = False  # bf16 autocast on CUDA (faster, ~1% logit error); CPU is always fp32
    strict: bool = False  # a too-short or unreadable video is fatal instead of skipped
    kvd: bool = False
    save_stats_real: Path | None = None
    save_stats_fake: Path | None = None
    save_features: Path | None = None


def validate_options(opts: FVDOptions) -> None:
    if opts.frames < MIN_FRAMES:
        raise BadInputError(f"--frames must be at least {MIN_FRAMES}: I3D's temporal pooling fails on shorter "
                            f"clips (got {opts.frames}; the FVD protocol uses 16)")
    checks = [
        (opts.num_videos >= 1, f"--num-videos must be at least 1, not {opts.num_videos}"),
        (opts.stride >= 1, f"--stride must be at least 1, not {opts.stride}"),
        (opts.clip in CLIP_MODES, f"--clip must be one of {', '.join(CLIP_MODES)}, not {opts.clip!r}"),
        (opts.resize in RESIZE_MODES, f"--resize must be one of {', '.join(RESIZE_MODES)}, not {opts.resize!r}"),
        (opts.ddof in (0, 1), f"--ddof must be 1 (1/(N-1)) or 0 (1/N, StyleGAN-V), not {opts.ddof}"),
        (opts.bn_eps > 0, f"--bn-eps must be positive, not {opts.bn_eps}"),
        (opts.detector in DETECTORS, f"--detector must be one of {', '.join(DETECTORS)}, not {opts.detector!r}"),
        (opts.batch_size >= 1, f"--batch-size must be at least 1, not {opts.batch_size}"),
        (opts.workers is None or opts.workers >= 0, f"--workers must be >= 0, not {opts.workers}"),
    ]
    for ok, message in checks:
        if not ok:
            raise BadInputError(message)


# ---------------------------------------------------------------- 1. sources


@dataclass(frozen=True)
class VideoRef:
    """One video: a file or frame folder, a (T, H, W, 3) array file, or row `index` of an (N, T, H, W, 3) one."""

    path: Path
    key: str | None = None  # npz member holding the array
    index: int | None = None

    @property
    def is_array(self) -> bool:
        return self.path.suffix.lower() in ARRAY_EXTS

    @property
    def label(self) -> str:
        return str(self.path) if self.index is None else f"{self.path}[{self.index}]"


@dataclass
class Source:
    """One side: either videos (`refs`) or precomputed statistics (`stats`)."""

    path: Path
    refs: list[VideoRef] = field(default_factory=list)
    stats: FeatureStats | None = None

    @property
    def is_stats(self) -> bool:
        return self.stats is not None


def _npz_members(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (OSError, zipfile.BadZipFile) as e:
        raise BadInputError(f"{path}: not a readable .npz file ({e})") from None


def is_stats_file(path: Path) -> bool:
    return path.suffix.lower() == ".npz" and STATS_MEMBERS <= set(_npz_members(path))


def _npz_key(path: Path) -> str:
    """The npz member holding the video(s): `video`, else the only/first array."""
    names = [n[:-4] for n in _npz_members(path) if n.endswith(".npy")]
    if not names:
        raise BadInputError(f"{path}: the .npz file holds no arrays")
    return "video" if "video" in names else names[0]


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def array_header(path: Path, key: str | None) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an .npy file or an npz member, reading only its header."""
    try:
        if key is None:
            with open(path, "rb") as f:
                shape, _, dtype = _read_header(f)
        else:
            with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
                shape, _, dtype = _read_header(f)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise BadInputError(f"{path}: not a readable numpy array ({e})") from None
    return tuple(shape), np.dtype(dtype)


def open_array(path: Path, key: str | None) -> np.ndarray:
    """The array, memory-mapped when stored uncompressed (.npy, np.savez), else loaded."""
    try:
        if key is None:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{key}.npy")
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:  # skip the zip local header to the .npy bytes
                f.seek(info.header_offset)
                local = f.read(30)
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                f.seek(info.header_offset + 30 + name_len + extra_len)
                shape, fortran, dtype = _read_header(f)
                offset = f.tell()
            if not np.dtype(dtype).hasobject:
                return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                                 order="F" if fortran else "C")
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    except (OSError, ValueError, KeyError, struct.error, zipfile.BadZipFile) as e:
        raise BadInputError(f"{path}: cannot read the array ({e})") from None


def _array_refs(path: Path) -> list[VideoRef]:
    key = _npz_key(path) if path.suffix.lower() == ".npz" else None
    shape, dtype = array_header(path, key)
    where = f"{path}" + (f" (key {key!r})" if key else "")
    if dtype != np.uint8 or len(shape) not in (4, 5) or shape[-1] not in (1, 3):
        raise BadInputError(f"{where}: expected uint8 videos shaped (N, T, H, W, 3) or one video (T, H, W, 3); "
                            f"got {dtype} {shape}")
    if len(shape) == 4:
        return [VideoRef(path, key)]
    return [VideoRef(path, key, i) for i in range(shape[0])]


def _path_key(p: Path) -> list:
    return [natural_key(Path(part)) for part in p.parts]


def open_source(path: str | Path) -> Source:
    """List one side's videos in natural order, or load its statistics file."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"not found: {path}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npz" and is_stats_file(path):
            return Source(path, stats=FeatureStats.load(path))
        if suffix in ARRAY_EXTS:
            return Source(path, refs=_array_refs(path))
        if suffix not in VIDEO_EXTS:
            raise BadInputError(f"{path}: not a video ({', '.join(sorted(VIDEO_EXTS))}), .npy/.npz array, "
                                "statistics file or folder")
        return Source(path, refs=[VideoRef(path)])
    found = find_videos(path)
    if found != [path]:  # a folder of videos, not one frame folder: add the arrays in it
        frame_dirs = {p for p in found if p.is_dir()}
        for dirpath, dirnames, filenames in os.walk(path):
            d = Path(dirpath)
            if d in frame_dirs:
                dirnames.clear()
                continue
            dirnames.sort()
            for name in filenames:
                p = d / name
                if p.suffix.lower() not in ARRAY_EXTS or name.startswith("."):  # .x.tmpPID.npz: unfinished writes
                    continue
                if p.suffix.lower() == ".npz" and is_stats_file(p):
                    if dist.is_main():
                        log(f"ignoring statistics file {p} inside {path}")
                    continue
                found.append(p)
    refs: list[VideoRef] = []
    for p in sorted(found, key=_path_key):
        refs += _array_refs(p) if p.is_file() and p.suffix.lower() in ARRAY_EXTS else [VideoRef(p)]
    if not refs:
        raise BadInputError(f"{path}: no videos found (video files, frame folders of "
                            f"{'/'.join(sorted(e[1:] for e in IMAGE_EXTS))}, .npy/.npz arrays)")
    return Source(path, refs=refs)


# ---------------------------------------------------------------- 2. clips


def clip_span(frames: int, stride: int) -> int:
    """Frames of the source a clip covers."""
    return (frames - 1) * stride + 1


def clip_start(num_frames: int, opts: FVDOptions, index: int) -> int:
    """Window start for video `index` (its position in the sorted list) of `num_frames` frames.

    first: 0. random: uniform over every full window, from a generator seeded with
    (seed, index): the same video gets the same clip whatever the batch size, workers or ranks.
    """
    last = num_frames - clip_span(opts.frames, opts.stride)
    if last < 0:
        raise ValueError("video shorter than the clip")
    if opts.clip == "first" or last == 0:
        return 0
    return int(np.random.default_rng([opts.seed, index]).integers(0, last + 1))


def _too_short(label: str, have: int, opts: FVDOptions) -> BadInputError:
    return BadInputError(f"{label}: too short: a {opts.frames}-frame clip with stride {opts.stride} needs "
                         f"{clip_span(opts.frames, opts.stride)} frames, it has {have}")


class ClipDataset(Dataset):
    """Item k -> (video index, uint8 clip (T, H, W, C) tensor or None, skip reason or None)."""

    def __init__(self, refs: list[VideoRef], indices: list[int], opts: FVDOptions):
        self.refs, self.indices, self.opts = refs, indices, opts
        self._arrays: dict[tuple[Path, str | None], np.ndarray] = {}

    def __getstate__(self) -> dict:  # workers re-open (memory-map) arrays instead of receiving copies
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
        opts = self.opts
        if ref.is_array:
            video = self._array(ref)
            if video.shape[0] < clip_span(opts.frames, opts.stride):
                raise _too_short(ref.label, video.shape[0], opts)
            start = clip_start(video.shape[0], opts, index)
            return np.array(video[start : start + clip_span(opts.frames, opts.stride) : opts.stride])  # a copy
        if opts.clip == "first":
            start = 0
        else:  # the window depends on the length: count first (frame folders: a listing)
            n = count_frames(ref.path)
            if n < clip_span(opts.frames, opts.stride):
                raise _too_short(ref.label, n, opts)
            start = clip_start(n, opts, index)
        try:
            return read_video(ref.path, start, opts.frames, opts.stride)
        except BadInputError as e:
            if "too short" in str(e):
                raise _too_short(ref.label, count_frames(ref.path), opts) from None
            raise


def _first(batch):  # DataLoader collate for batch_size=None: items as they are
    return batch


# ---------------------------------------------------------------- 3. features


@dataclass
class Collected:
    """Per-video features of one side, in video order, and the videos skipped."""

    features: np.ndarray  # (N, D) float64
    labels: list[str]
    skipped: list[tuple[str, str]]  # (video, reason)


def _gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (just [obj] without a process group)."""
    tdist = torch.distributed
    if dist.world_size() > 1 and tdist.is_available() and tdist.is_initialized():
        out: list[Any] = [None] * dist.world_size()
        tdist.all_gather_object(out, obj)
        return out
    return [obj]


def default_workers(device: torch.device) -> int:
    """CPU: I3D (~0.7 s a clip) dwarfs decoding, so decode inline; GPU: decoding is the bottleneck."""
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def _extract_shard(refs: list[VideoRef], indices: list[int], opts: FVDOptions,
                   extract: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                   advance: Callable[[int], None] | None) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Features of videos `indices` (this rank's share of a round), and the skipped ones."""
    feats: dict[int, np.ndarray] = {}
    skipped: dict[int, str] = {}
    if not indices:
        return feats, skipped
    workers = default_workers(device) if opts.workers is None else opts.workers
    loader = DataLoader(ClipDataset(refs, indices, opts), batch_size=None, collate_fn=_first,
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


def collect_features(source: Source, opts: FVDOptions, extract: Callable[[torch.Tensor], torch.Tensor],
                     device: torch.device | str = "cpu", progress: Progress | None = None,
                     side: str = "videos") -> Collected:
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
        for part_feats, part_skipped in _gather(local):
            feats.update(part_feats)
            skipped.update(part_skipped)
        if opts.strict and skipped:
            raise BadInputError(f"{skipped[min(skipped)]} (--strict)")
    order = sorted(feats)
    features = np.stack([feats[i] for i in order]) if order else np.zeros((0, 0))
    return Collected(features, [refs[i].label for i in order], [(refs[i].label, skipped[i]) for i in sorted(skipped)])


@contextlib.contextmanager
def precision(device: torch.device, amp: bool) -> Iterator[None]:
    """bf16 autocast on CUDA with amp; otherwise true fp32 (TF32 off while extracting)."""
    if device.type != "cuda":
        yield
        return
    if amp:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _with_precision(fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                    amp: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """`fn` under `precision` (only the network: resizing stays fp32)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with precision(device, amp):
            return fn(x)

    return run


# ---------------------------------------------------------------- 4. protocol checks


def _protocol_diffs(file_protocol: dict, run_protocol: dict, keys: tuple[str, ...]) -> list[str]:
    return [f"{k} {file_protocol.get(k)!r} in the file, {run_protocol.get(k)!r} in this run"
            for k in keys if file_protocol.get(k) != run_protocol.get(k)]


def _check_stats(side: str, source: Source, run_protocol: dict, keys: tuple[str, ...]) -> None:
    diffs = _protocol_diffs(source.stats.protocol, run_protocol, keys)
    if diffs:
        raise BadInputError(f"{side} statistics {source.path} were computed under a different protocol: "
                            f"{'; '.join(diffs)}. Use matching options or recompute them.")


def _check_kept_features(side: str, source: Source, flag: str) -> None:
    if source.is_stats and not source.stats.keep_features:
        raise BadInputError(f"{flag} needs per-video features, and {side} ({source.path}) is a statistics file "
                            "holding only mean and covariance; pass the videos instead")


# ---------------------------------------------------------------- 5. the distance


# ---------------------------------------------------------------- 6. the command


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


def evaluate_fvd(real: str | Path, fake: str | Path, opts: FVDOptions, device: DeviceChoice,
                 progress: Progress | None = None) -> dict[str, Any]:
    """FVD between REAL and FAKE (folders, videos, arrays or statistics files); see the module docstring.

    `progress(description, total)` returns an `advance(n)` callback (the CLI's rich bar).
    Returns the result dict printed by `pvdm eval-fvd --json`; files are written on rank 0.
    """
    # 1. options and inputs, checked before anything slow
    validate_options(opts)
    sources = {"REAL": open_source(real), "FAKE": open_source(fake)}
    dev = dist.device_for_rank(device.device)
    amp = "bf16" if opts.amp and dev.type == "cuda" else None
    if opts.amp and amp is None and dist.is_main():
        log(f"--amp applies to CUDA only; running fp32 on {dev.type}")
    for flag, wanted in (("--kvd", opts.kvd), ("--save-features", opts.save_features is not None)):
        if wanted:
            for side, src in sources.items():
                _check_kept_features(side, src, flag)
    protocol = make_protocol(opts.frames, opts.resize, opts.detector, opts.bn_eps, "", amp=amp)
    cheap_keys = tuple(k for k in PROTOCOL_KEYS if k != "weights_sha256")
    for side, src in sources.items():
        if src.is_stats:
            _check_stats(side, src, protocol, cheap_keys)

    # 2. the detector (only if a side has videos); its digest completes the protocol
    need_i3d = any(not s.is_stats for s in sources.values())
    if need_i3d:
        fn, digest = load_i3d(opts.i3d_weights, opts.detector, opts.bn_eps, dev)
    else:
        fn, digest = None, sources["REAL"].stats.protocol.get("weights_sha256", "")
    protocol["weights_sha256"] = digest
    for side, src in sources.items():
        if src.is_stats:
            _check_stats(side, src, protocol, ("weights_sha256",))

    # 3. features, side by side
    collected: dict[str, Collected | None] = {}
    for side, src in sources.items():
        if src.is_stats:
            collected[side] = None
            continue
        collected[side] = collect_features(src, opts, _with_precision(fn, dev, opts.amp), dev, progress, side.lower())
        _report_skipped(side, collected[side].skipped)

    # 4. statistics and distances
    stats = {side: _side_stats(src, collected[side], protocol, opts, side) for side, src in sources.items()}
    fvd = fvd_from_stats(stats["REAL"], stats["FAKE"], ddof=opts.ddof)
    result: dict[str, Any] = {
        "fvd": fvd, "n_real": stats["REAL"].n, "n_fake": stats["FAKE"].n, "frames": opts.frames,
        "resolution": protocol["resolution"], "resize": opts.resize, "detector": opts.detector,
        "weights_sha256": digest, "ddof": opts.ddof, "bn_eps": protocol["bn_eps"], "amp": amp,
        "stride": opts.stride, "clip": opts.clip, "seed": opts.seed,
        "skipped_real": len(collected["REAL"].skipped) if collected["REAL"] else 0,
        "skipped_fake": len(collected["FAKE"].skipped) if collected["FAKE"] else 0,
    }
    real_feats = _side_features(sources["REAL"], collected["REAL"]) if opts.kvd or opts.save_features else None
    fake_feats = _side_features(sources["FAKE"], collected["FAKE"]) if opts.kvd or opts.save_features else None
    if opts.kvd:
        result["kvd"] = kernel_video_distance(real_feats[0], fake_feats[0])

    # 5. files (rank 0 only: every rank holds the same gathered features)
    if dist.is_main():
        for side, path in (("REAL", opts.save_stats_real), ("FAKE", opts.save_stats_fake)):
            if path is not None:
                result[f"stats_{side.lower()}"] = str(stats[side].save(path))
        if opts.save_features is not None:
            result["features"] = str(save_features(Path(opts.save_features), real_feats, fake_feats))
    dist.barrier()
    return result


__all__ = ["Collected", "FVDOptions", "Source", "VideoRef", "clip_start", "collect_features", "evaluate_fvd",
           "open_source", "validate_options"]
