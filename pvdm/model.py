"""`pvdm.load`: a trained diffusion run (or a converted release checkpoint) as one object that
samples and extends videos, with the autoencoder it was trained on.

A thin typed layer over the functions `pvdm sample` and `pvdm extend` call (pvdm_core.generate.sample),
so a video sampled here equals the CLI's with the same options, frame for frame. Videos are
numpy uint8 arrays (N, T, H, W, 3), as `read_video` returns and `write_video` and `fvd` take;
latents are `Latents` of float32 CPU tensors in the autoencoder's units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Union, overload

import numpy as np
import torch

from pvdm.config import Overrides, assignments
from pvdm_core.artifacts.load import LoadedAE, LoadedDiffusion, load_autoencoder as _load_autoencoder, load_diffusion
from pvdm_core.base.config import Config, Sampler, SampleConfig
from pvdm_core.base.device import DeviceChoice, choose_device
from pvdm_core.base.errors import BadInputError
from pvdm_core.base.progress import progress_bar
from pvdm_core.models.autoencoder import Latents
from pvdm_core.generate.sample import (ae_decode, ae_encode, clips_to_sample, extend_frames, extension_input,
                                       resolve_classes, sample_config, sample_into)
from pvdm_core.io.video_io import FrameBuffer, to_float, to_uint8

Classes = Union[str, int, Sequence[Union[str, int]], None]  # names (case-insensitive) or indices


def _class_names(classes: Classes) -> list[str] | None:
    if classes is None:
        return None
    return [str(c) for c in ([classes] if isinstance(classes, (str, int)) else classes)]


@contextmanager
def _progress(show: bool, description: str, total: int) -> Iterator[Callable[[], None] | None]:
    """The CLI's progress bar on stderr, advanced once a clip (no callback when not shown)."""
    with progress_bar(disable=not show) as bar:
        task = bar.add_task(description, total=total, info="")
        yield (lambda: bar.advance(task)) if show else None


class _Trained:
    """What a loaded autoencoder and a loaded diffusion model both tell."""

    def __init__(self, cfg: Config, path: str, device: DeviceChoice):
        self._cfg, self._path, self._device = cfg, path, device

    @property
    def config(self) -> Config:
        """The resolved config the model was trained with."""
        return self._cfg

    @property
    def path(self) -> str:
        """The checkpoint file the weights came from."""
        return self._path

    @property
    def frames(self) -> int:
        """T, frames per clip."""
        return self._cfg.data.frames

    @property
    def resolution(self) -> int:
        """R: clips are R x R."""
        return self._cfg.data.resolution

    @property
    def device(self) -> torch.device:
        return self._device.device


class Autoencoder(_Trained):
    """A trained PVDM autoencoder: uint8 clips <-> the three latent planes.

    Clips have exactly the training clip size, `frames` frames of `resolution` x `resolution`.
    """

    def __init__(self, loaded: LoadedAE, device: DeviceChoice):
        super().__init__(loaded.cfg, loaded.path, device)
        self._loaded = loaded

    def encode(self, videos: np.ndarray) -> Latents:
        """uint8 clips (N, T, R, R, 3) -> Latents z_s (N, C, h, w), z_h (N, C, T, w), z_w (N, C, T, h),
        float32 on the CPU, in [-1, 1] (h = w = R / patch size)."""
        videos = np.asarray(videos)
        want = (self.frames, self.resolution, self.resolution, 3)
        if videos.ndim != 5 or videos.shape[1:] != want or videos.dtype != np.uint8:
            raise BadInputError(f"encode takes uint8 clips (N, {', '.join(map(str, want))}), "
                                f"got {videos.dtype} {videos.shape}")
        x = torch.stack([to_float(v) for v in videos])  # (N, 3, T, R, R) in [-1, 1]
        return ae_encode(self._loaded.model, x, self._device).to("cpu")

    def decode(self, latents: Latents) -> np.ndarray:
        """Latents (N, ...) per plane, as `encode` or `Model.sample(return_latents=True)` give them
        -> uint8 clips (N, T, R, R, 3)."""
        video = ae_decode(self._loaded.model, Latents(*latents), self._device)  # (N, 3, T, R, R)
        return np.stack([to_uint8(v) for v in video])

    def __repr__(self) -> str:
        return f"pvdm.Autoencoder({self.path!r}, {self.frames} frames of {self.resolution}x{self.resolution}, {self.device})"


class Model(_Trained):
    """A trained PVDM diffusion model with its autoencoder (what `pvdm sample` loads).

    `sample` and `extend` take the options of `pvdm sample` / `pvdm extend`; those left None
    keep the values the model was trained with (`config.sample`). Videos longer than `frames`
    are generated clip by clip.
    """

    def __init__(self, loaded: LoadedDiffusion, device: DeviceChoice):
        super().__init__(loaded.cfg, loaded.path, device)
        self._loaded = loaded
        self.autoencoder = Autoencoder(loaded.ae, device)

    @property
    def class_names(self) -> list[str]:
        """Label index -> name of a class-conditional model; empty for an unconditional one."""
        return list(self._loaded.class_names)

    def _options(self, sampler: Sampler | None, steps: int | None, eta: float | None, guidance: float | None,
                 cond_guidance: float | None, overrides: Overrides, compile: bool) -> SampleConfig:
        return sample_config(self._loaded.cfg, sampler, steps, eta, assignments(overrides), guidance, cond_guidance,
                             compile).sample

    @overload
    def sample(self, num: int = 1, frames: int | None = None, *, seed: int = 0, classes: Classes = None,
               guidance: float | None = None, cond_guidance: float | None = None, sampler: Sampler | None = None,
               steps: int | None = None, eta: float | None = None, overrides: Overrides = None,
               batch_size: int = 8, compile: bool = False, return_latents: Literal[False] = False,
               progress: bool = False) -> np.ndarray: ...

    @overload
    def sample(self, num: int = 1, frames: int | None = None, *, seed: int = 0, classes: Classes = None,
               guidance: float | None = None, cond_guidance: float | None = None, sampler: Sampler | None = None,
               steps: int | None = None, eta: float | None = None, overrides: Overrides = None,
               batch_size: int = 8, compile: bool = False, return_latents: Literal[True],
               progress: bool = False) -> tuple[np.ndarray, list[Latents]]: ...

    def sample(self, num=1, frames=None, *, seed=0, classes=None, guidance=None, cond_guidance=None, sampler=None,
               steps=None, eta=None, overrides=None, batch_size=8, compile=False, return_latents=False,
               progress=False):
        """`num` videos of `frames` frames (default one clip, `self.frames`) -> uint8 (num, frames, R, R, 3).

        As `pvdm sample`: video i uses seed + i and its own generator, so it does not depend on
        `num` or `batch_size` (but for float rounding: pixels may differ by one level between
        batch sizes); a class-conditional model samples video i of class
        classes[i % len(classes)] (names or indices; None: the null label); `guidance` steers
        towards the class, `cond_guidance` towards the previous clip; `overrides` sets other
        `sample.*` keys (e.g. {"sample.noise": "release"}). With `return_latents`, also the
        latents of each clip k as a list of Latents (num, ...) per plane, before the last clip is
        trimmed to `frames`: `self.autoencoder.decode(latents[k])` gives clip k's frames.
        """
        opts = self._options(sampler, steps, eta, guidance, cond_guidance, overrides, compile)
        labels = resolve_classes(self._loaded, _class_names(classes), opts)
        frames = self.frames if frames is None else frames
        kept: list[Latents] = []  # batch by batch, clip by clip
        keep = (lambda z: kept.append(z.to("cpu"))) if return_latents else None
        with _progress(progress, "sample", clips_to_sample(num, frames, self.frames, batch_size)) as advance:
            videos = sample_into(self._loaded, lambda chunk: [FrameBuffer() for _ in chunk], num, frames, seed, opts,
                                 self._device, batch_size, on_clip=advance, classes=labels, on_latents=keep)
        videos = np.stack(videos)  # (N, F, R, R, 3)
        if not return_latents:
            return videos
        clips = -(-frames // self.frames)
        return videos, [Latents.cat(kept[k::clips]) for k in range(clips)]

    def extend(self, video: np.ndarray | str | Path, frames: int, *, seed: int = 0, classes: Classes = None,
               guidance: float | None = None, cond_guidance: float | None = None, sampler: Sampler | None = None,
               steps: int | None = None, eta: float | None = None, overrides: Overrides = None,
               compile: bool = False, only_new: bool = False, progress: bool = False) -> np.ndarray:
        """Continue a real video by `frames` frames, as `pvdm extend`.

        `video`: uint8 frames (T, H, W, 3) with T >= `self.frames`, or a video file or frame
        folder; every `config.data.frame_stride`-th frame is used, center-cropped and resized to
        R x R. Returns uint8 (T + frames, R, R, 3): the input, then the new frames (only those
        with `only_new`). One class at most.
        """
        opts = self._options(sampler, steps, eta, guidance, cond_guidance, overrides, compile)
        labels = resolve_classes(self._loaded, _class_names(classes), opts, most=1)
        given = extension_input(self._loaded, video)
        name = str(video) if isinstance(video, (str, Path)) else "the video"
        with _progress(progress, "extend", clips_to_sample(1, frames, self.frames, 1)) as advance:
            return extend_frames(self._loaded, given, FrameBuffer, frames, seed, opts, self._device, only_new,
                                 advance, labels[0] if labels else None, name=name)

    def __repr__(self) -> str:
        classes = f", classes {self.class_names}" if self.class_names else ""
        return (f"pvdm.Model({self.path!r}, clips of {self.frames} frames at {self.resolution}x{self.resolution}"
                f"{classes}, {self.device})")


def load(run_or_checkpoint: str | Path, device: str | None = None, *, ema: bool = True,
         ae: str | Path | None = None) -> Model:
    """A diffusion run folder (its latest checkpoint), a checkpoint file, or a release checkpoint
    converted with `pvdm convert`, with the autoencoder it was trained on (or `ae`).

    `device`: auto (CUDA, else MPS, else CPU; the default), cpu, cuda, cuda:N or mps. `ema`:
    the EMA weights (default) or the raw ones. Raises BadInputError for a missing or foreign file.
    """
    choice = choose_device(device)
    return Model(load_diffusion(run_or_checkpoint, choice.device, ema, ae), choice)


def load_autoencoder(run_or_checkpoint: str | Path, device: str | None = None) -> Autoencoder:
    """The autoencoder of a `pvdm train-ae` run or checkpoint (or a converted release one) alone."""
    choice = choose_device(device)
    return Autoencoder(_load_autoencoder(run_or_checkpoint, choice.device), choice)


__all__ = ["Autoencoder", "Classes", "Model", "load", "load_autoencoder"]
