"""`pvdm encode`: videos -> the three latent planes, cached for diffusion training.

A latents file (.npz) holds, for N clips: z_s (N, C, h, w), z_h (N, C, T, w), z_w (N, C, T, h)
(float16 by default), `source` (N,) the video path, `start` (N,) the clip's first frame, and
scalars `ae_hash` (identity of the AE weights), `frames`, `frame_stride`, `resolution`;
with class labels (`pvdm encode --class-labels`) also `label` (N,) int64 and `class_names` (K,),
the index map of the whole input set (data/labels.py).
A folder of latents is shards `latents-00000.npz`, ... of the same form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import DataLoader

from pvdm_core.artifacts.load import LoadedAE
from pvdm_core.base.atomic import atomic_path
from pvdm_core.base.device import DeviceChoice, autocast
from pvdm_core.base.errors import BadInputError
from pvdm_core.data.labels import label_indices
from pvdm_core.io.video_io import center_crop_resize, find_videos, read_video, to_uint8, unit_range, write_video
from pvdm_core.models.autoencoder import Latents

SHARD_CLIPS = 4096


def clip_starts(num_frames: int, frames: int, clips: str, stride: int) -> list[int]:
    """Start positions (in sampled frames) for --clips first|all|N with --stride."""
    last = num_frames - frames
    if last < 0:
        return []
    starts = list(range(0, last + 1, stride))
    if clips == "first":
        return starts[:1]
    if clips == "all":
        return starts
    if clips.isdigit() and int(clips) > 0:
        return starts[: int(clips)]
    raise BadInputError(f"--clips must be first, all or a positive number, not {clips!r}")


class VideoClips(torch.utils.data.Dataset):
    """Item i: the selected clips of video i, as (source, start frame, uint8 clip (3, T, R, R)),
    or why it was skipped (a str): read by DataLoader workers, so the device does not wait for
    decoding, and returned as a value, not raised, so the message stays one line."""

    def __init__(self, videos: list[Path], frames: int, frame_stride: int, resolution: int, clips: str, stride: int):
        self.videos, self.frames, self.frame_stride = videos, frames, frame_stride
        self.resolution, self.clips, self.stride = resolution, clips, stride

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> list[tuple[str, int, torch.Tensor]] | str:
        path, frames, step = self.videos[i], self.frames, self.frame_stride
        try:
            video = read_video(path, step=step)  # (N, H, W, 3) uint8
            starts = clip_starts(len(video), frames, self.clips, self.stride)
            if not starts:
                raise BadInputError(f"{path}: too short: needs {frames} frames (stride {step}), has {len(video)}")
        except BadInputError as e:
            return str(e)
        crops = [center_crop_resize(video[s : s + frames], self.resolution) for s in starts]  # (T, R, R, 3) each
        return [(str(path), s * step, rearrange(torch.from_numpy(c), "t h w c -> c t h w")) for s, c in zip(starts, crops)]


def _as_is(item: object) -> object:
    return item


def iter_clips(videos: list[Path], frames: int, frame_stride: int, resolution: int, clips: str, stride: int,
               strict: bool, skipped: dict[str, str], workers: int = 0) -> Iterator[tuple[str, int, torch.Tensor]]:
    """(source, start frame, uint8 clip (3, T, R, R)) for every selected clip of every video, in
    order; `workers` processes decode (0: this one)."""
    if workers < 0:
        raise BadInputError(f"--workers must be 0 or more, not {workers}")
    loader = DataLoader(VideoClips(videos, frames, frame_stride, resolution, clips, stride), batch_size=None,
                        num_workers=workers, collate_fn=_as_is)
    for path, item in zip(videos, loader):
        if isinstance(item, str):
            if strict:
                raise BadInputError(item)
            skipped[str(path)] = item
            continue
        yield from item


def expand_inputs(inputs: list[str], read_stdin: Callable[[], list[str]]) -> list[Path]:
    """Video files, frame folders, dataset roots (searched recursively) and '-' for stdin paths."""
    out: list[Path] = []
    for item in inputs:
        names = read_stdin() if item == "-" else [item]
        for name in names:
            out += find_videos(Path(name))
    if not out:
        raise BadInputError("no videos found in the inputs")
    return out


def _save_shard(path: Path, planes: list[Latents], sources: list[str], starts: list[int], meta: dict, dtype: str,
                class_names: list[str] | None) -> None:
    z = Latents.cat(planes)
    arrays = {name: getattr(z, name).cpu().numpy().astype(dtype) for name in Latents._fields}
    if class_names is not None:
        labels = label_indices(sources, class_names)[0]
        arrays.update(label=np.array(labels, dtype=np.int64), class_names=np.array(class_names))
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays, source=np.array(sources), start=np.array(starts, dtype=np.int64),
                 **{k: np.array(v) for k, v in meta.items()})


@torch.no_grad()
def encode_videos(ae: LoadedAE, videos: list[Path], out: Path, device: DeviceChoice, clips: str = "all",
                  stride: int | None = None, batch_size: int = 16, dtype: str = "float16",
                  reconstruct: Path | None = None, strict: bool = False,
                  on_clip: Callable[[], None] | None = None, shard_prefix: str = "latents-",
                  class_names: list[str] | None = None, workers: int = 0) -> dict:
    """Encode every selected clip; write one .npz (out ends in .npz) or shards in a folder;
    `workers` processes decode the videos while the device encodes.

    Under torchrun each process passes its share of `videos` and its own `shard_prefix`;
    `class_names` (the index map of all videos, data/labels.py) stores each clip's label.
    """
    if dtype not in ("float16", "float32"):
        raise BadInputError(f"--dtype must be float16 or float32, not {dtype!r}")
    d = ae.cfg.data
    stride = stride or d.frames  # non-overlapping consecutive clips: pairs for conditional training
    meta = {"ae_hash": ae.ae_hash, "frames": d.frames, "frame_stride": d.frame_stride, "resolution": d.resolution}
    single = out.suffix == ".npz"
    skipped: dict[str, str] = {}
    shard: list[Latents] = []
    sources: list[str] = []
    starts: list[int] = []
    written: list[str] = []
    total = 0
    batch: list[tuple[str, int, torch.Tensor]] = []

    def flush_batch() -> None:
        nonlocal total
        x = unit_range(torch.stack([c for _, _, c in batch]).to(device.device))  # (B, 3, T, R, R)
        with autocast(device):
            z = ae.model.encode(x).float()
        shard.append(z.to("cpu"))
        sources.extend(s for s, _, _ in batch)
        starts.extend(s for _, s, _ in batch)
        if reconstruct is not None:
            with autocast(device):
                recon = ae.model.decode(z).float().cpu()
            for (src, st, _), video in zip(batch, recon):
                write_video(reconstruct / f"{Path(src).stem}_{st:06d}.mp4", to_uint8(video))
        total += len(batch)
        batch.clear()

    def flush_shard() -> None:
        if not shard:
            return
        path = out if single else out / f"{shard_prefix}{len(written):05d}.npz"
        _save_shard(path, shard, sources, starts, meta, dtype, class_names)
        written.append(str(path))
        shard.clear(), sources.clear(), starts.clear()

    for item in iter_clips(videos, d.frames, d.frame_stride, d.resolution, clips, stride, strict, skipped, workers):
        batch.append(item)
        if on_clip:
            on_clip()
        if len(batch) == batch_size:
            flush_batch()
            if not single and len(sources) >= SHARD_CLIPS:
                flush_shard()
    if batch:
        flush_batch()
    if total == 0:
        raise BadInputError(f"no clip of {d.frames} frames could be read from the inputs ({len(skipped)} skipped)")
    flush_shard()
    shapes = ae.model.latent_shapes()
    return {"output": str(out), "files": written, "clips": total, "videos": len(videos) - len(skipped),
            "skipped_videos": len(skipped), "skipped": skipped, "ae_hash": ae.ae_hash,
            "latent_shapes": {k: list(v) for k, v in shapes.items()}, "dtype": dtype,
            **({"class_names": class_names} if class_names is not None else {})}


@dataclass
class LatentSet:
    """All clips of a latents file or folder, as float32 tensors in memory."""

    z: Latents
    source: np.ndarray
    start: np.ndarray
    ae_hash: str
    frames: int
    frame_stride: int
    label: np.ndarray | None = None  # (N,) class index per clip; None: written without class labels
    class_names: list[str] = field(default_factory=list)  # label index -> name

    def __len__(self) -> int:
        return len(self.source)

    def next_clip_index(self) -> np.ndarray:
        """For each clip, the index of the clip that follows it in the same video, or -1."""
        key = {(s, int(st)): i for i, (s, st) in enumerate(zip(self.source, self.start))}
        step = self.frames * self.frame_stride
        return np.array([key.get((s, int(st) + step), -1) for s, st in zip(self.source, self.start)])


def load_latents(path: str | Path, expect_ae_hash: str | None = None) -> LatentSet:
    path = Path(path)
    files = sorted(path.glob("latents-*.npz")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise BadInputError(f"no latents found at {path} (write them with `pvdm encode`)")
    parts, sources, starts, labels, meta = [], [], [], [], None
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as data:
                m = {k: data[k].item() for k in ("ae_hash", "frames", "frame_stride")}
                m["class_names"] = data["class_names"].tolist() if "class_names" in data else None
                parts.append(Latents(*(torch.from_numpy(data[k].astype(np.float32)) for k in Latents._fields)))
                sources.append(data["source"])
                starts.append(data["start"])
                labels.append(data["label"] if "label" in data else None)
        except (OSError, KeyError, ValueError) as e:
            raise BadInputError(f"{f} is not a pvdm latents file ({e})") from None
        if meta is not None and m != meta:
            if m["class_names"] != meta["class_names"]:
                raise BadInputError(f"{f} holds other class labels than {files[0]} (encode them together)")
            raise BadInputError(f"{f} was written by another autoencoder than {files[0]}")
        meta = m
    if expect_ae_hash is not None and meta["ae_hash"] != expect_ae_hash:
        raise BadInputError(f"latents at {path} come from another autoencoder (ae_hash {meta['ae_hash']}, "
                            f"expected {expect_ae_hash}); re-encode them with this --ae")
    label = np.concatenate(labels) if meta["class_names"] is not None else None
    return LatentSet(Latents.cat(parts), np.concatenate(sources), np.concatenate(starts), str(meta["ae_hash"]),
                     int(meta["frames"]), int(meta["frame_stride"]), label, meta["class_names"] or [])
