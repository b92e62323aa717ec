"""`pvdm sample` and `pvdm extend`: videos of any length, clip by clip (spec §2).

Clip 1 is sampled unconditionally (or, for `extend`, conditioned on the input's last clip);
clip k > 1 is conditioned on the clean latents of clip k-1, obtained as the reference does:
decode it, re-encode its frames. Video i uses seed S + i and its own generator, so a video
does not depend on the batch size or the number of processes. Frames are handed to the
writers clip by clip as uint8 (files, or FrameBuffers for the Python API): a long video never
sits in memory as floats. A class-conditional model samples video i of class
classes[i % len(classes)] (the null label without --class); `guided` adds classifier-free
guidance on the class (`sample.guidance`) and on the previous clip (`sample.cond_guidance`, the
release's `w`) to every sampler's network call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pvdm_core.artifacts.load import LoadedDiffusion
from pvdm_core.base.config import Config, SampleConfig, override_config
from pvdm_core.base.device import DeviceChoice, autocast, compiled
from pvdm_core.base.errors import BadInputError
from pvdm_core.diffusion.planes import FlatNoise, scale_planes
from pvdm_core.diffusion.process import eps_from_v
from pvdm_core.diffusion.samplers import sample as run_sampler
from pvdm_core.io.video_io import FrameSink, VideoWriter, center_crop_resize, read_video, to_float, to_uint8
from pvdm_core.models.autoencoder import Latents, ProjectedAutoencoder


def sample_config(cfg: Config, sampler: str | None = None, steps: int | None = None, eta: float | None = None,
                  sets: list[str] | None = None, guidance: float | None = None,
                  cond_guidance: float | None = None, compile_: bool = False) -> Config:
    """The model's config with --set sample.* (and run.amp), then --sampler/--steps/--eta and the
    guidance weights applied, checked like any config (a typo in --sampler names the choices)."""
    sets = list(sets or [])
    sets += [f"sample.sampler={sampler}"] if sampler else []
    sets += [f"sample.steps={steps}"] if steps else []  # --steps 0 keeps the model's
    sets += [f"sample.eta={eta}"] if eta is not None else []
    sets += [f"sample.guidance={guidance}"] if guidance is not None else []
    sets += [f"sample.cond_guidance={cond_guidance}"] if cond_guidance is not None else []
    sets += ["sample.compile=true"] if compile_ else []
    return override_config(cfg, sets, ("sample", "run.amp"))


def _noise(shapes: dict[str, tuple[int, ...]], generators: list[torch.Generator], device: torch.device) -> Latents:
    """x_T for a batch: row b is drawn from generators[b] alone."""
    rows = [Latents(*(torch.randn(shapes[k], generator=g) for k in Latents._fields)) for g in generators]
    return Latents.cat([r.map(lambda z: z[None]) for r in rows]).to(device)


def resolve_classes(model: LoadedDiffusion, names: list[str] | None, opts: SampleConfig,
                    most: int | None = None) -> list[int] | None:
    """--class values (names, case-insensitive, or indices; "a,b" counts as two) -> label indices,
    None without --class; refuses unknown ones listing the valid ones, more than `most`, and
    class options on a model without classes."""
    valid = model.class_names
    names = [n.strip() for item in names or [] for n in item.split(",") if n.strip()]
    if most is not None and len(names) > most:
        raise BadInputError(f"give at most {most} --class here, not {len(names)}")
    if names and not valid:
        raise BadInputError(f"{model.path} is not class-conditional (trained without unet.num_classes): drop --class")
    if opts.guidance and not names:
        raise BadInputError("--guidance steers towards a class: give one with --class"
                            + (f" ({', '.join(valid)})" if valid else " (and a class-conditional model)"))
    lower = {v.lower(): i for i, v in enumerate(valid)}
    out = []
    for name in names:
        if name.lower() in lower:
            out.append(lower[name.lower()])
        elif name.isdigit() and int(name) < len(valid):
            out.append(int(name))
        else:
            raise BadInputError(f"unknown class {name!r}: choose one of {', '.join(valid)} (or 0..{len(valid) - 1})")
    return out or None


def video_class(classes: list[int], i: int) -> int:
    """The label of video i: --class values are cycled over the videos."""
    return classes[i % len(classes)]


def class_report(model: LoadedDiffusion, classes: list[int] | None, indices: list[int], opts: SampleConfig) -> dict:
    """The guidance weights and, for a class-conditional model, the class of each video written
    (None: the null label, no --class), for --json."""
    out: dict = {"guidance": opts.guidance, "cond_guidance": opts.cond_guidance}
    if model.class_names:
        out["classes"] = [model.class_names[video_class(classes, i)] if classes else None for i in indices]
    return out


def noise_source(seeds: list[int], layout: str, device: torch.device) -> list[torch.Generator] | FlatNoise:
    """Per-video CPU generators seeded seeds[i] (the same samples on any device), or (layout
    "release") one FlatNoise generator seeded seeds[0] for the whole batch, as the release draws
    from one global generator: on `device`'s, since the release draws on its CUDA device, whose
    stream differs from the CPU's for one seed."""
    if layout == "release":
        on = device if device.type == "cuda" else torch.device("cpu")
        return FlatNoise(torch.Generator(device=on).manual_seed(seeds[0]))
    return [torch.Generator().manual_seed(s) for s in seeds]


def guided(unet: Callable[..., tuple[torch.Tensor, ...]], x: Latents, t: torch.Tensor, cond: Latents | None,
           label: torch.Tensor | None, w_label: float = 0.0, w_cond: float = 0.0) -> Latents:
    """The network output with classifier-free guidance (Ho & Salimans 2022, eq. 6) on the class
    label and on the previous clip, every branch in one batched forward:

        out = out(z | prev, y) + w_label (out(z | prev, y) - out(z | prev, null))
                               + w_cond  (out(z | prev, y) - out(z | 0, y))

    w_cond alone is the release's (1 + w) eps(z | prev) - w eps(z | 0) (its `w`, 0 in its
    configs). A branch exists only where it differs: no label branch without a label, no
    condition branch without a previous clip, so w = 0 is one plain forward. Guidance is linear
    with weights summing to 1, so guiding v equals guiding the eps derived from it.
    """
    branches, weights = [(cond, label)], []  # 1. the conditional branch, then each unconditional one
    if w_label and label is not None:
        branches.append((cond, torch.full_like(label, -1)))  # -1: the null label
        weights.append(w_label)
    if w_cond and cond is not None:
        branches.append((None, label))
        weights.append(w_cond)
    if len(branches) == 1:
        return Latents(*unet(x, t, cond, label))
    # 2. one forward over the branches stacked on the batch axis (zeros = no previous clip)
    n, batch = len(branches), x.batch_size
    conds = None if cond is None else Latents.cat([c if c is not None else cond.map(torch.zeros_like) for c, _ in branches])
    labels = None if label is None else torch.cat([lab for _, lab in branches])
    out = Latents(*unet(Latents.cat([x] * n), t.repeat(n), conds, labels))
    parts = [out.take(slice(k * batch, (k + 1) * batch)) for k in range(n)]  # each (B, ...) per plane
    # 3. full = f + w (f - u) per unconditional branch u, all against the conditional f
    full = parts[0]
    for w, u in zip(weights, parts[1:]):
        full = Latents(*(a + w * (f - b) for a, f, b in zip(full, parts[0], u)))
    return full


@torch.no_grad()
def sample_clip(model: LoadedDiffusion, cond: Latents | None, noise: list[torch.Generator] | FlatNoise,
                opts: SampleConfig, device: DeviceChoice, batch: int | None = None,
                label: torch.Tensor | None = None) -> Latents:
    """Latents of one clip per video, conditioned on `cond` (None = unconditional) and on class
    `label` (B,) (None = the null label); AE units in and out."""
    shapes = model.ae.model.latent_shapes()
    if isinstance(noise, FlatNoise):
        zeros = Latents(*(torch.zeros((batch, *shapes[k]), device=device.device) for k in Latents._fields))
        x_T = noise.like(zeros)
    else:
        x_T = _noise(shapes, noise, device.device)
    inv_std = tuple(1.0 / s for s in model.latent_std)
    cond = Latents(*scale_planes(cond, inv_std)) if cond is not None else None

    label = label.to(device.device) if label is not None else None

    def model_fn(x: Latents, t: torch.Tensor) -> Latents:
        with autocast(device):
            out = guided(model.unet, x, t, cond, label, opts.guidance, opts.cond_guidance).float()
        return Latents(*eps_from_v(out, x, t, model.schedule)) if model.cfg.diffusion.prediction == "v" else out

    # a list of generators: the sampler draws batch row b's noise from generators[b] alone
    # tanh latents lie in [-1, 1], so x_0 is clamped to [-1/std, 1/std] per plane
    z = run_sampler(model_fn, x_T, model.schedule, opts.sampler, opts.steps, opts.eta, generator=noise,
                    x0_bound=inv_std)
    return Latents(*scale_planes(z, model.latent_std))


@torch.no_grad()
def ae_decode(ae: ProjectedAutoencoder, z: Latents, device: DeviceChoice) -> torch.Tensor:
    with autocast(device):
        return ae.decode(z.to(device.device)).float()  # (B, 3, T, H, W)


@torch.no_grad()
def ae_encode(ae: ProjectedAutoencoder, video: torch.Tensor, device: DeviceChoice) -> Latents:
    with autocast(device):
        return ae.encode(video.to(device.device)).float()  # video (B, 3, T, H, W) in [-1, 1]


def decode(model: LoadedDiffusion, z: Latents, device: DeviceChoice) -> torch.Tensor:
    return ae_decode(model.ae.model, z, device)


def encode(model: LoadedDiffusion, video: torch.Tensor, device: DeviceChoice) -> Latents:
    return ae_encode(model.ae.model, video, device)


def generate(model: LoadedDiffusion, writers: list[FrameSink], seeds: list[int], frames: int, opts: SampleConfig,
             device: DeviceChoice, cond: Latents | None = None, on_clip: Callable[[], None] | None = None,
             labels: list[int] | None = None, on_latents: Callable[[Latents], None] | None = None) -> None:
    """Sample len(seeds) videos of `frames` frames together (video i of class labels[i]),
    streaming each clip to its writer and its latents (AE units, untrimmed) to `on_latents`."""
    t = model.cfg.data.frames
    noise = noise_source(seeds, opts.noise, device.device)
    label = torch.tensor(labels, dtype=torch.long) if labels is not None else None
    for k in range(math.ceil(frames / t)):
        z = sample_clip(model, cond, noise, opts, device, batch=len(seeds), label=label)
        if on_latents:
            on_latents(z)
        video = decode(model, z, device)
        keep = min(t, frames - k * t)  # the last clip is trimmed to the frames asked for
        for writer, clip in zip(writers, video):
            for frame in to_uint8(clip[:, :keep]):
                writer.append(frame)
        if k + 1 < math.ceil(frames / t):
            cond = encode(model, video, device)  # decode + re-encode, as the reference
        if on_clip:
            on_clip()


def output_paths(output: Path, num: int, fmt: str | None) -> list[Path]:
    """-o DIR: one file per video (mp4 unless --format); -o FILE: FILE, or FILE_0000... for several."""
    if output.suffix == "" and fmt != "frames":
        ext = {None: ".mp4", "mp4": ".mp4", "gif": ".gif", "npz": ".npz"}[fmt]
        return [output / f"sample_{i:05d}{ext}" for i in range(num)]
    if output.suffix == "" and fmt == "frames":
        return [output / f"sample_{i:05d}" for i in range(num)] if num > 1 else [output]
    if num == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{i:05d}{output.suffix}") for i in range(num)]


def for_sampling(model: LoadedDiffusion, opts: SampleConfig) -> LoadedDiffusion:
    """The model with its UNet compiled (inductor) when opts.compile; the same weights either way."""
    return dataclasses.replace(model, unet=compiled(model.unet, "inductor")) if opts.compile else model


def clips_to_sample(videos: int, frames: int, clip_frames: int, batch_size: int) -> int:
    """How many clips of `batch_size` videos a job samples (a progress bar's total); refuses a batch size below 1."""
    if batch_size < 1:
        raise BadInputError(f"--batch-size must be at least 1, not {batch_size}")
    return math.ceil(videos / batch_size) * math.ceil(frames / clip_frames)


def sample_into(model: LoadedDiffusion, open_writers: Callable[[list[int]], list[FrameSink]], num: int, frames: int,
                seed: int, opts: SampleConfig, device: DeviceChoice, batch_size: int = 8, indices: list[int] | None = None,
                on_clip: Callable[[], None] | None = None, classes: list[int] | None = None,
                on_latents: Callable[[Latents], None] | None = None) -> list:
    """Sample videos `indices` (default all of range(num)) batch by batch into the writers
    `open_writers(chunk)` gives for each batch; video i uses seed + i and, for a class-conditional
    model, class classes[i % len(classes)] (None: the null label). Returns what each writer's
    close() returns (a path, or the frames of an in-memory FrameBuffer), in index order."""
    if frames < 1 or num < 1:
        raise BadInputError("--frames and --num must be at least 1")
    indices = list(range(num)) if indices is None else indices
    model = for_sampling(model, opts)
    written = []
    for b in range(0, len(indices), batch_size):
        chunk = indices[b : b + batch_size]
        writers = open_writers(chunk)
        try:
            labels = [video_class(classes, i) for i in chunk] if classes else None
            generate(model, writers, [seed + i for i in chunk], frames, opts, device, on_clip=on_clip, labels=labels,
                     on_latents=on_latents)
        except BaseException:
            for w in writers:
                w.abort()
            raise
        written += [w.close() for w in writers]
    return written


def sample_videos(model: LoadedDiffusion, output: Path, num: int, frames: int, seed: int, opts: SampleConfig,
                  device: DeviceChoice, batch_size: int = 8, fmt: str | None = None, fps: float = 8.0,
                  indices: list[int] | None = None, on_clip: Callable[[], None] | None = None,
                  classes: list[int] | None = None) -> list[Path]:
    """`sample_into` files: video i goes to output_paths(output, num, fmt)[i]."""
    paths = output_paths(output, num, fmt)
    return sample_into(model, lambda chunk: [VideoWriter(paths[i], fps, fmt) for i in chunk], num, frames, seed,
                       opts, device, batch_size, indices, on_clip, classes)


def extension_input(model: LoadedDiffusion, video: str | Path | np.ndarray) -> np.ndarray:
    """The video to continue at the model's frame rate (every data.frame_stride-th frame), from a
    file or frame folder, or from uint8 frames (T, H, W, 3) in memory."""
    stride = model.cfg.data.frame_stride
    if isinstance(video, (str, Path)):
        return read_video(video, step=stride)
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise BadInputError(f"a video to extend must be uint8 frames (T, H, W, 3), got {video.dtype} {video.shape}")
    return video[::stride]


def extend_frames(model: LoadedDiffusion, video: np.ndarray, open_writer: Callable[[], FrameSink], frames: int,
                  seed: int, opts: SampleConfig, device: DeviceChoice, only_new: bool = False,
                  on_clip: Callable[[], None] | None = None, label: int | None = None, name: str = "the video") -> Any:
    """Continue `video` (T, H, W, 3) uint8 at the model's frame rate: condition on its last T
    frames (and class `label`); write the input, cropped and resized to the model's resolution,
    then F new frames (or only those) to `open_writer()`; returns what its close() returns."""
    d = model.cfg.data
    if len(video) < d.frames:
        raise BadInputError(f"{name}: too short to extend: needs at least {d.frames} frames, has {len(video)}")
    video = center_crop_resize(video, d.resolution)
    cond = encode(model, to_float(video[-d.frames :])[None], device)
    model = for_sampling(model, opts)
    writer = open_writer()
    try:
        if not only_new:
            for frame in video:
                writer.append(frame)
        generate(model, [writer], [seed], frames, opts, device, cond=cond, on_clip=on_clip,
                 labels=[label] if label is not None else None)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def extend_video(model: LoadedDiffusion, input_path: Path, output: Path, frames: int, seed: int,
                 opts: SampleConfig, device: DeviceChoice, only_new: bool = False, fmt: str | None = None,
                 fps: float = 8.0, on_clip: Callable[[], None] | None = None, label: int | None = None) -> Path:
    """`extend_frames` from a video file or frame folder to a video file."""
    return extend_frames(model, extension_input(model, input_path), lambda: VideoWriter(output, fps, fmt), frames,
                         seed, opts, device, only_new, on_clip, label, name=str(input_path))
