"""The one video I/O module: read files and frame folders, preprocess clips, write videos.

Decoding goes through imageio-ffmpeg (a static ffmpeg ships in its wheel), GIFs and frame
images through Pillow (via imageio). Frames in memory are uint8 arrays (T, H, W, 3); model
tensors are float (3, T, H, W) in [-1, 1].
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from pvdm_core.base.errors import BadInputError, ClipTooShortError

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
FFMPEG_WRITE_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def natural_key(path: Path) -> list:
    """Sort 'frame2.png' before 'frame10.png'."""
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=natural_key)


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTS


def is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTS for p in path.iterdir())


def find_videos(root: Path) -> list[Path]:
    """All video files and frame folders under root (recursive), naturally sorted."""
    root = Path(root)
    if is_video_file(root) or is_frame_folder(root):
        return [root]
    if not root.is_dir():
        raise BadInputError(f"not found: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames.sort()
        if any(Path(f).suffix.lower() in IMAGE_EXTS for f in filenames):
            found.append(d)  # a frame folder is one video; its subfolders are not searched
            dirnames.clear()
            continue
        found += [d / f for f in filenames if Path(f).suffix.lower() in VIDEO_EXTS]
    return sorted(found, key=lambda p: [natural_key(Path(part)) for part in p.parts])


def _rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.shape[-1] == 4:
        frame = frame[..., :3]
    return np.ascontiguousarray(frame.astype(np.uint8, copy=False))


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 frames of a video file or a frame folder, decoding lazily."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"video not found: {path}")
    try:
        if path.is_dir():
            files = frame_files(path)
            if not files:
                raise BadInputError(f"{path}: folder holds no frame images ({', '.join(sorted(IMAGE_EXTS))})")
            for f in files:
                yield _rgb(iio.imread(f))
        elif path.suffix.lower() == ".gif":
            for frame in iio.imiter(path):
                yield _rgb(frame)
        else:
            if path.stat().st_size == 0:
                raise BadInputError(f"{path}: empty file")
            gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
            meta = next(gen)
            w, h = meta["size"]
            for raw in gen:
                yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    except BadInputError:
        raise
    except (OSError, RuntimeError, ValueError, StopIteration) as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise BadInputError(f"{path}: cannot decode video ({reason[:200]})") from None


def read_video(path: str | Path, start: int = 0, num_frames: int | None = None, step: int = 1) -> np.ndarray:
    """Frames start, start+step, ... (num_frames of them, or all) as (T, H, W, 3) uint8."""
    path = Path(path)
    stop = None if num_frames is None else start + (num_frames - 1) * step + 1
    frames, seen = [], 0
    for i, frame in enumerate(iter_frames(path)):
        if stop is not None and i >= stop:
            break
        seen = i + 1
        if i >= start and (i - start) % step == 0:
            frames.append(frame.copy())
    if not frames:
        raise BadInputError(f"{path}: no frames decoded (empty or corrupt video)")
    if num_frames is not None and len(frames) < num_frames:
        # The loop ran to the end of the video, so `seen` is its whole length.
        raise ClipTooShortError(
            f"{path}: too short: needs {num_frames} frames (start {start}, step {step}), has {len(frames)}",
            have=seen, need=stop)
    return np.stack(frames)


def count_frames(path: str | Path) -> int:
    """Number of frames (decodes the file: exact, unlike container metadata)."""
    path = Path(path)
    if path.is_dir():
        return len(frame_files(path))
    if path.suffix.lower() == ".gif":
        return sum(1 for _ in iter_frames(path))
    try:
        n, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError, ValueError) as e:
        raise BadInputError(f"{path}: cannot decode video ({str(e).strip()[:200]})") from None
    if n == 0:
        raise BadInputError(f"{path}: no frames decoded (empty or corrupt video)")
    return n


def to_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (3, T, H, W) in [-1, 1]."""
    return unit_range(rearrange(torch.as_tensor(frames), "t h w c -> c t h w"))


def unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any layout, any device) -> float in [-1, 1]; float clips (the synthetic
    sets') pass unchanged. Training ships uint8 clips from its data workers, 4x less shared
    memory, and converts them here, on the device."""
    return x if x.is_floating_point() else x.float() / 127.5 - 1.0


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """float (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    x = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rearrange(x, "c t h w -> t h w c").cpu().numpy()


def center_crop_resize(frames: np.ndarray, size: int) -> np.ndarray:
    """Center-crop (T, H, W, 3) uint8 to a square, bilinear-resize it to size x size."""
    t, h, w, _ = frames.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = torch.from_numpy(np.ascontiguousarray(frames[:, top : top + s, left : left + s]))
    if s != size:
        x = rearrange(x, "t h w c -> t c h w").float()
        # antialias: downscaling UCF/Sky frames without it aliases fine texture.
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = rearrange(x.round().clamp(0, 255).to(torch.uint8), "t c h w -> t h w c")
    return x.numpy()


def load_clip(path: str | Path, start: int, frames: int, step: int, resolution: int) -> torch.Tensor:
    """Read one clip and preprocess it as the datasets do: (3, T, R, R) uint8 (unit_range makes
    it float in [-1, 1])."""
    frames_u8 = center_crop_resize(read_video(path, start, frames, step), resolution)
    return rearrange(torch.from_numpy(frames_u8), "t h w c -> c t h w")


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 with yuv420p needs even sizes: pad by repeating the last row/column."""
    h, w, _ = frame.shape
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def output_format(path: str | Path, fmt: str | None = None) -> str:
    """mp4 | gif | npz | frames, from --format or the path's extension (none = frames folder)."""
    if fmt:
        if fmt not in ("mp4", "gif", "npz", "frames"):
            raise BadInputError(f"unknown video format {fmt!r} (mp4, gif, npz or frames)")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in FFMPEG_WRITE_EXTS:
        return "mp4"
    if suffix in (".gif", ".npz"):
        return suffix[1:]
    if suffix == "":
        return "frames"
    raise BadInputError(f"cannot write video with extension {suffix!r} (use .mp4, .gif, .npz or a folder)")


class FrameSink(Protocol):
    """Where generated frames go, one (H, W, 3) uint8 frame at a time: a VideoWriter (a file) or
    a FrameBuffer (memory, for the Python API)."""

    def append(self, frame: np.ndarray) -> None: ...

    def close(self) -> Any: ...

    def abort(self) -> None: ...


class FrameBuffer:
    """A FrameSink in memory: close() returns the frames as one (T, H, W, 3) uint8 array."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def append(self, frame: np.ndarray) -> None:
        self.frames.append(_rgb(frame))

    def close(self) -> np.ndarray:
        if not self.frames:
            raise BadInputError("no frames to write")
        return np.stack(self.frames)

    def abort(self) -> None:
        self.frames.clear()


class VideoWriter:
    """Streaming writer of (H, W, 3) uint8 frames to mp4 (H.264, yuv420p), gif, npz or a folder.

    Frames go to a temp name that is renamed over `path` on close(), so a failure leaves no
    half file and keeps whatever was at `path` before. mp4 and frame folders stream frame by
    frame; gif and npz are written whole at close().
    """

    def __init__(self, path: str | Path, fps: float = 8.0, fmt: str | None = None):
        self.path, self.fps = Path(path), fps
        self.fmt = output_format(self.path, fmt)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}{self.path.suffix}")
        self.count = 0
        self._frames: list[np.ndarray] = []
        self._ffmpeg = None
        if self.fmt == "frames":
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir()

    def append(self, frame: np.ndarray) -> None:
        frame = _rgb(frame)
        if self.fmt == "mp4":
            frame = _even(frame)
            if self._ffmpeg is None:
                h, w, _ = frame.shape
                self._ffmpeg = imageio_ffmpeg.write_frames(
                    str(self.tmp), (w, h), fps=self.fps, codec="libx264", pix_fmt_out="yuv420p",
                    quality=None, output_params=["-crf", "17"], macro_block_size=1, ffmpeg_log_level="error")
                self._ffmpeg.send(None)
            self._ffmpeg.send(np.ascontiguousarray(frame))
        elif self.fmt == "frames":
            iio.imwrite(self.tmp / f"{self.count:05d}.png", frame)
        else:
            self._frames.append(frame)
        self.count += 1

    def close(self) -> Path:
        if self._ffmpeg is not None:
            self._ffmpeg.close()
        if self.count == 0:
            self.abort()
            raise BadInputError(f"{self.path}: no frames to write")
        if self.fmt == "gif":
            iio.imwrite(self.tmp, np.stack(self._frames), extension=".gif", duration=1000 / self.fps, loop=0)
        elif self.fmt == "npz":
            np.savez_compressed(self.tmp, video=np.stack(self._frames))
        if self.fmt == "frames" and self.path.is_dir():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._ffmpeg is not None:
            try:
                self._ffmpeg.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file goes either way
                pass
            self._ffmpeg = None
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp)
        elif self.tmp.exists():
            self.tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 8.0, fmt: str | None = None) -> Path:
    """Write (H, W, 3) uint8 frames (streamed) with VideoWriter; returns the path."""
    with VideoWriter(path, fps, fmt) as writer:
        for frame in frames:
            writer.append(frame)
    return writer.path
