"""The embedded dataset: moving, rotating shapes over textured, drifting backgrounds.

Video i is a pure function of (seed, i, frames, resolution): no download, identical on every
machine, any resolution and length. Each video has 1-3 shapes (disc, square, triangle) that
bounce off the borders while rotating, over a background of two drifting sinusoidal colour
waves, so both content (colours, shapes) and motion (velocities, spin, drift) carry
structure a model can learn and FVD can measure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

SHAPES = ("disc", "square", "triangle")


def _shape_mask(kind: str, dx: torch.Tensor, dy: torch.Tensor, radius: float, angle: torch.Tensor) -> torch.Tensor:
    """Soft coverage in [0, 1] of a shape centred at the origin of (dx, dy), in pixels."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate the grid, not the shape
    if kind == "disc":
        dist = torch.sqrt(u**2 + v**2) - radius
    elif kind == "square":
        dist = torch.maximum(u.abs(), v.abs()) - radius * 0.85
    else:  # equilateral triangle: max over the three edge half-planes
        edges = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6)]
        dist = torch.stack([-(u * ex + v * ey) for ex, ey in edges]).amax(0) - radius * 0.5
    return (0.5 - dist).clamp(0, 1)  # one-pixel anti-aliased edge


def synthetic_video(seed: int, frames: int, resolution: int) -> torch.Tensor:
    """One video as float (3, T, R, R) in [-1, 1], deterministic in its arguments."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    r = resolution
    t = torch.arange(frames, dtype=torch.float64)[:, None, None]  # (T, 1, 1)
    y, x = torch.meshgrid(torch.arange(r, dtype=torch.float64) + 0.5, torch.arange(r, dtype=torch.float64) + 0.5, indexing="ij")

    # 1. background: two colour waves with random direction, frequency and drift speed
    video = torch.zeros(frames, r, r, 3, dtype=torch.float64)
    base = rand(3) * 0.6 + 0.2
    video += base
    for _ in range(2):
        theta, freq, speed = rand(1) * 2 * math.pi, 1 + rand(1) * 3, (rand(1) - 0.5) * 0.6
        phase = (torch.cos(theta) * x + torch.sin(theta) * y) / r * 2 * math.pi * freq + speed * t
        video += 0.15 * torch.sin(phase)[..., None] * (rand(3) * 2 - 1)

    # 2. shapes: position bounces off the borders (triangle wave), angle grows linearly
    for _ in range(1 + int(rand(1) * 3)):
        kind = SHAPES[int(rand(1) * len(SHAPES))]
        radius = float(r * (0.1 + rand(1) * 0.12))
        color = rand(3)
        lo, span = radius, r - 2 * radius
        pos0, vel = rand(2) * span, (rand(2) - 0.5) * r * 0.12
        angle0, spin = rand(1) * 2 * math.pi, (rand(1) - 0.5) * 0.5
        travel = (pos0 + vel * t.reshape(-1, 1)) % (2 * span)  # (T, 2)
        centre = lo + torch.where(travel > span, 2 * span - travel, travel)
        for k in range(frames):
            mask = _shape_mask(kind, x - centre[k, 0], y - centre[k, 1], radius, angle0 + spin * k)
            video[k] = video[k] * (1 - mask[..., None]) + color * mask[..., None]

    video = video.clamp(0, 1).permute(3, 0, 1, 2)  # (3, T, R, R)
    return (video * 2 - 1).float()


class SyntheticVideoDataset(Dataset):
    """`count` videos with seeds first_seed, first_seed + 1, ... (the split is the seed range)."""

    def __init__(self, count: int, first_seed: int, frames: int, resolution: int):
        self.count, self.first_seed, self.frames, self.resolution = count, first_seed, frames, resolution

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> torch.Tensor:
        return synthetic_video(self.first_seed + i, self.frames, self.resolution)

    def name(self, i: int) -> str:
        return f"synthetic/{self.first_seed + i:08d}"


def write_synthetic_videos(out_dir: Path, num: int, frames: int, resolution: int, first_seed: int,
                           fmt: str = "mp4", fps: float = 8.0, on_video: Callable[[], None] | None = None) -> list[Path]:
    """Write `num` synthetic videos as files (a ready `real/` folder for every command)."""
    from pvdm_core.video_io import to_uint8, write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if fmt == "frames" else f".{fmt}"
    paths = []
    for i in range(num):
        video = to_uint8(synthetic_video(first_seed + i, frames, resolution))
        paths.append(write_video(out_dir / f"synthetic_{first_seed + i:08d}{suffix}", video, fps=fps, fmt=fmt))
        if on_video:
            on_video()
    return paths
