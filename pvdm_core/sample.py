"""`pvdm sample` and `pvdm extend`: videos of any length, clip by clip (spec §2).

Clip 1 is sampled unconditionally (or, for `extend`, conditioned on the input's last clip);
clip k > 1 is conditioned on the clean latents of clip k-1, obtained as the reference does:
decode it, re-encode its frames. Video i uses seed S + i and its own generator, so a video
does not depend on the batch size or the number of processes. Frames are handed to the
writers clip by clip as uint8: a long video never sits in memory as floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from pvdm_core.checkpoint import checkpoint_config, load_checkpoint
from pvdm_core.config import Config
from pvdm_core.device import DeviceChoice, autocast
from pvdm_core.diffusion import NoiseSchedule, eps_from_v, sample as run_sampler, scale_planes
from pvdm_core.encode import LoadedAE, load_autoencoder
from pvdm_core.errors import BadInputError
from pvdm_core.models.autoencoder import Latents
from pvdm_core.models.unet import TriplaneUNet
from pvdm_core.video_io import VideoWriter, center_crop_resize, read_video, to_float, to_uint8

KIND = "diffusion"


@dataclass
class LoadedDiffusion:
    unet: TriplaneUNet
    ae: LoadedAE
    cfg: Config
    schedule: NoiseSchedule
    path: str
    latent_std: tuple[float, ...]  # the model diffuses z / latent_std (all 1 unless diffusion.scale_latents)


def build_unet(cfg: Config) -> TriplaneUNet:
    return TriplaneUNet(cfg.unet, cfg.ae.latent_channels)


def newest_run(root: Path = Path("runs")) -> Path:
    """The newest run folder under ./runs holding a diffusion checkpoint (for `sample` without --model)."""
    candidates = [p.parent for p in root.glob("*/latest")] if root.is_dir() else []
    for run in sorted(candidates, key=lambda p: (p / "latest").stat().st_mtime, reverse=True):
        try:
            load_checkpoint(run, KIND)
            return run
        except BadInputError:
            continue
    raise BadInputError(f"no diffusion run found under {root}/; pass --model RUN (from `pvdm train-diffusion`)")


def load_diffusion(run_or_ckpt: str | Path | None, device: torch.device, use_ema: bool = True,
                   ae: str | Path | None = None) -> LoadedDiffusion:
    """A trained diffusion model (EMA weights by default) with the autoencoder it was trained on."""
    state = load_checkpoint(run_or_ckpt if run_or_ckpt is not None else newest_run(), KIND)
    cfg = checkpoint_config(state)
    unet = build_unet(cfg)
    unet.load_state_dict(state["ema"] if use_ema and "ema" in state else state["model"])
    ae_path = ae or state["ae_path"]
    if not Path(ae_path).exists():
        raise BadInputError(f"the autoencoder this model was trained on is gone ({ae_path}); pass --ae RUN")
    loaded_ae = load_autoencoder(ae_path, device)
    if loaded_ae.ae_hash != state["ae_hash"]:
        raise BadInputError(f"{ae_path} is not the autoencoder {state['path']} was trained on "
                            f"(ae_hash {loaded_ae.ae_hash}, expected {state['ae_hash']})")
    return LoadedDiffusion(unet.to(device).eval().requires_grad_(False), loaded_ae, cfg,
                           NoiseSchedule.from_config(cfg.diffusion), state["path"], tuple(state["latent_std"]))


@dataclass
class SamplerOptions:
    sampler: str
    steps: int
    eta: float


def _noise(shapes: dict[str, tuple[int, ...]], generators: list[torch.Generator], device: torch.device) -> Latents:
    """x_T for a batch: row b is drawn from generators[b] alone."""
    rows = [Latents(*(torch.randn(shapes[k], generator=g) for k in Latents._fields)) for g in generators]
    return Latents.cat([r.map(lambda z: z[None]) for r in rows]).to(device)


@torch.no_grad()
def sample_clip(model: LoadedDiffusion, cond: Latents | None, generators: list[torch.Generator],
                opts: SamplerOptions, device: DeviceChoice) -> Latents:
    """Latents of one clip per generator, conditioned on `cond` (None = unconditional); AE units in and out."""
    x_T = _noise(model.ae.model.latent_shapes(), generators, device.device)
    inv_std = tuple(1.0 / s for s in model.latent_std)
    cond = Latents(*scale_planes(cond, inv_std)) if cond is not None else None

    def model_fn(x: Latents, t: torch.Tensor) -> Latents:
        with autocast(device):
            out = Latents(*model.unet(x, t, cond)).float()
        return Latents(*eps_from_v(out, x, t, model.schedule)) if model.cfg.diffusion.prediction == "v" else out

    # a list of generators: the sampler draws batch row b's noise from generators[b] alone
    # tanh latents lie in [-1, 1], so x_0 is clamped to [-1/std, 1/std] per plane
    z = run_sampler(model_fn, x_T, model.schedule, opts.sampler, opts.steps, opts.eta, generator=generators,
                    x0_bound=inv_std)
    return Latents(*scale_planes(z, model.latent_std))


@torch.no_grad()
def decode(model: LoadedDiffusion, z: Latents, device: DeviceChoice) -> torch.Tensor:
    with autocast(device):
        return model.ae.model.decode(z).float()  # (B, 3, T, H, W)


@torch.no_grad()
def encode(model: LoadedDiffusion, video: torch.Tensor, device: DeviceChoice) -> Latents:
    with autocast(device):
        return model.ae.model.encode(video.to(device.device)).float()


def generate(model: LoadedDiffusion, writers: list[VideoWriter], seeds: list[int], frames: int, opts: SamplerOptions,
             device: DeviceChoice, cond: Latents | None = None, on_clip: Callable[[], None] | None = None) -> None:
    """Sample len(seeds) videos of `frames` frames together, streaming each clip to its writer."""
    t = model.cfg.data.frames
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    for k in range(math.ceil(frames / t)):
        z = sample_clip(model, cond, generators, opts, device)
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


def sample_videos(model: LoadedDiffusion, output: Path, num: int, frames: int, seed: int, opts: SamplerOptions,
                  device: DeviceChoice, batch_size: int = 8, fmt: str | None = None, fps: float = 8.0,
                  indices: list[int] | None = None, on_clip: Callable[[], None] | None = None) -> list[Path]:
    """Write videos `indices` (default all of range(num)); video i uses seed + i."""
    if frames < 1 or num < 1:
        raise BadInputError("--frames and --num must be at least 1")
    paths = output_paths(output, num, fmt)
    indices = list(range(num)) if indices is None else indices
    written = []
    for b in range(0, len(indices), batch_size):
        chunk = indices[b : b + batch_size]
        writers = [VideoWriter(paths[i], fps, fmt) for i in chunk]
        try:
            generate(model, writers, [seed + i for i in chunk], frames, opts, device, on_clip=on_clip)
        except BaseException:
            for w in writers:
                w.abort()
            raise
        written += [w.close() for w in writers]
    return written


def extend_video(model: LoadedDiffusion, input_path: Path, output: Path, frames: int, seed: int,
                 opts: SamplerOptions, device: DeviceChoice, only_new: bool = False, fmt: str | None = None,
                 fps: float = 8.0, on_clip: Callable[[], None] | None = None) -> Path:
    """Continue a real video: condition on its last T frames, write input + F new frames."""
    d = model.cfg.data
    video = read_video(input_path, step=d.frame_stride)
    if len(video) < d.frames:
        raise BadInputError(f"{input_path}: too short to extend: needs at least {d.frames} frames, has {len(video)}")
    video = center_crop_resize(video, d.resolution)
    cond = encode(model, to_float(video[-d.frames :])[None], device)
    with VideoWriter(output, fps, fmt) as writer:
        if not only_new:
            for frame in video:
                writer.append(frame)
        generate(model, [writer], [seed], frames, opts, device, cond=cond, on_clip=on_clip)
    return writer.path

