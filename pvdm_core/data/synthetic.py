"""The embedded dataset: moving, rotating shapes over moving backgrounds.

Video i is a pure function of (seed, i, frames, resolution): no download, identical on every
machine, any resolution and length. Each video has 1-2 shapes (disc, square, triangle; exactly
one in the class-labelled set, `data.class_labels: true`, whose label is its kind: larger,
always contrasting with its background and rocking about an upright pose, see SINGLE_SHAPE_SCALE)
that bounce off the borders while rotating, over a background of a static colour gradient and one
set of soft colour stripes drifting along its own axis (vertical stripes move left or right,
horizontal ones up or down), so both content (colours, shapes) and motion (velocities, spin,
drift) carry structure a model can learn and FVD can measure.

Why stripes along one axis: before the decoder's transformer, PVDM's latent is the broadcast
sum z_s(h, w) + z_h(t, w) + z_w(t, h) (spec §1). A static gradient and stripes drifting along
their own axis have exactly that form, so the background costs the small demo models nothing
and their capacity goes to the shapes, which only the decoder's attention can rebuild. (Until
0.1 the background was two sinusoids drifting in random, mostly diagonal, directions: a
pattern no broadcast sum holds, and the tiny autoencoder spent its budget blurring it. The
shapes were also more (1-3), smaller (radius 10-22% of the frame, now 16-26%), faster and
hard-edged: at 32 px their outlines were all a minutes-long training run could not learn.)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

SHAPES = ("disc", "square", "triangle")
LABELS_FILE = "labels.json"  # beside class-labelled videos written by `pvdm synth`: file name -> class
EDGE_PX = 1.5  # width of a shape's anti-aliased edge, in pixels
# The class-labelled set is drawn so that a viewer can check its label at 32 px, where the small
# autoencoders decode a default-sized, low-contrast shape as a blob whose kind no one can tell:
# - its one shape is this much larger (radius 24-39% of the frame);
SINGLE_SHAPE_SCALE = 1.5
# - a triangle this much larger again (capped so that it still moves): at the same radius it
#   covers 41% of a disc's area, so triangles were the smallest and most often frayed shapes;
SINGLE_TRIANGLE_SCALE = 1.25
SINGLE_TRIANGLE_MAX_RADIUS = 0.42  # of the frame: keeps 16% of it to bounce in
# - the shape's colour differs from the background's mean by at least this in every channel
#   (on the 0-1 scale), so no shape fades into its background and its outline weighs in the
#   squared error the models learn from (0.25 until the rocking pose below: at 0.5 a diffusion
#   screen's samples were judged the class asked for in 70% against 44%, RESULTS.md "Learning" 10);
SINGLE_SHAPE_CONTRAST = 0.5
# - it moves and turns this much slower (at most 0.48 px per axis and 0.04 rad a frame: up to 8 px and 35
#   degrees over a 16-frame clip). PVDM's content plane pools each pixel over the clip; a shape
#   that crosses the frame and turns half a revolution in one clip pools into a round smear, and
#   the small decoders then draw every class as a disc (benchmarks/RESULTS.md, "Learning");
SINGLE_SHAPE_SLOWDOWN = (0.3, 0.2)  # (velocity, spin); spin only where SINGLE_SHAPE_ROCKING is None
# - and it rocks about an upright pose instead of spinning from a random angle: the angle swings
#   sinusoidally by an amplitude and period drawn from these ranges (radians, frames), so every
#   frame shows a square as a diamond and a triangle apex up, within 14 degrees. At a random angle
#   the 8x8 latent grid of the small autoencoders drew squares and discs as the same jagged blob
#   (reconstructions judged right in 70%); upright, 100%, and a diffusion model learns one
#   silhouette a class instead of every rotation of it (RESULTS.md, "Learning" 10).
#   None: spin as the default set does (slowed as above).
SINGLE_SHAPE_ROCKING: tuple[float, float, float, float] | None = (0.10, 0.25, 32.0, 64.0)  # amplitude lo, hi; period lo, hi
UPRIGHT_ANGLE = {"disc": 0.0, "square": math.pi / 4, "triangle": math.pi}  # a diamond; a triangle apex up


def _shape_mask(kind: str, dx: torch.Tensor, dy: torch.Tensor, radius: float, angle: torch.Tensor) -> torch.Tensor:
    """Soft coverage in [0, 1] of a shape centred at the origin of (dx, dy), in pixels; the
    arguments broadcast, so one call covers every frame."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate the grid, not the shape
    if kind == "disc":
        dist = torch.sqrt(u**2 + v**2) - radius
    elif kind == "square":
        dist = torch.maximum(u.abs(), v.abs()) - radius * 0.85
    else:  # equilateral triangle: max over the three edge half-planes
        edges = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6)]
        dist = torch.stack([-(u * ex + v * ey) for ex, ey in edges]).amax(0) - radius * 0.5
    return (0.5 - dist / EDGE_PX).clamp(0, 1)


def contrasting(color: torch.Tensor, background: torch.Tensor, margin: float) -> torch.Tensor:
    """`color` with each channel moved at least `margin` away from `background`'s (both (3,),
    0-1 scale): on its own side when that stays in [0, 1], else on the other side. A channel
    already `margin` away is kept, so margin 0 returns `color`."""
    side = torch.where(color >= background, 1.0, -1.0).to(color.dtype)
    pushed = background + side * margin
    pushed = torch.where((pushed < 0) | (pushed > 1), background - side * margin, pushed)
    return torch.where((color - background).abs() >= margin, color, pushed)


def _background(rand: Callable[..., torch.Tensor], t: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(T, R, R, 3): base colour + static linear gradient + stripes drifting along their axis."""
    r = x.shape[-1]
    video = (rand(3) * 0.6 + 0.2).expand(t.shape[0], r, r, 3).clone()
    gx, gy = (rand(2) - 0.5) * 0.4  # gradient strength along x and y
    video += (gx * (x / r - 0.5) + gy * (y / r - 0.5))[..., None] * (rand(3) * 2 - 1)
    axis = x if float(rand(1)) < 0.5 else y
    freq, speed, phase0 = 1 + rand(1), (rand(1) - 0.5) * 0.6, rand(1) * 2 * math.pi  # 1-2 stripes a frame
    phase = axis / r * 2 * math.pi * freq + speed * t + phase0  # drifts along `axis` only
    return video + 0.08 * torch.sin(phase)[..., None] * (rand(3) * 2 - 1)


def _render(seed: int, frames: int, resolution: int, single_shape: bool,
            draw_shapes: bool = True, shape_scale: float = 1.0) -> tuple[torch.Tensor, list[str]]:
    """(video (3, T, R, R) in [-1, 1], the kinds of its shapes in drawing order). The draws do not
    depend on frames or resolution, so the kinds of any size of video `seed` are the same.
    `draw_shapes=False` leaves the shapes out: video `seed`'s background alone. `shape_scale`
    (0 < s <= 1) shrinks every shape, the draws unchanged: the shape judge learns from shapes of
    every size so that size, which differs between the classes, is not what it reads."""
    if not 0 < shape_scale <= 1:
        raise ValueError(f"shape_scale must be in (0, 1], got {shape_scale}")
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    r = resolution
    t = torch.arange(frames, dtype=torch.float64)[:, None, None]  # (T, 1, 1)
    y, x = torch.meshgrid(torch.arange(r, dtype=torch.float64) + 0.5, torch.arange(r, dtype=torch.float64) + 0.5, indexing="ij")
    video = _background(rand, t, x, y)

    # shapes: position bounces off the borders (triangle wave), angle grows linearly. A
    # single-shape video draws the shape count too and keeps only the first shape, enlarged: the
    # same draws as the default video, so the first shape's kind is its label either way.
    count = 1 + int(rand(1) * 2)
    kinds = []
    for _ in range(1 if single_shape else count):
        kind = SHAPES[int(rand(1) * len(SHAPES))]
        kinds.append(kind)
        radius = float(r * (0.16 + rand(1) * 0.1)) * (SINGLE_SHAPE_SCALE if single_shape else 1.0)
        color = rand(3)
        if single_shape:
            if kind == "triangle":
                radius = min(radius * SINGLE_TRIANGLE_SCALE, r * SINGLE_TRIANGLE_MAX_RADIUS)
            color = contrasting(color, video.mean((0, 1, 2)), SINGLE_SHAPE_CONTRAST)
        radius *= shape_scale
        lo, span = radius, r - 2 * radius
        pos0, vel = rand(2) * span, (rand(2) - 0.5) * r * 0.1  # up to 1.6 px a frame at 32 px
        angle0, spin = rand(1) * 2 * math.pi, (rand(1) - 0.5) * 0.4  # up to 0.2 rad a frame
        if single_shape:
            vel, spin = vel * SINGLE_SHAPE_SLOWDOWN[0], spin * SINGLE_SHAPE_SLOWDOWN[1]
        angle = angle0 + spin * t  # (T, 1, 1)
        if single_shape and SINGLE_SHAPE_ROCKING:
            # drawn after the default set's draws, so positions and kinds stay those of the default video
            amp_lo, amp_hi, period_lo, period_hi = SINGLE_SHAPE_ROCKING
            amp, period = amp_lo + rand(1) * (amp_hi - amp_lo), period_lo + rand(1) * (period_hi - period_lo)
            angle = UPRIGHT_ANGLE[kind] + amp * torch.sin(2 * math.pi * t / period + rand(1) * 2 * math.pi)
        travel = (pos0 + vel * t.reshape(-1, 1)) % (2 * span)  # (T, 2)
        centre = (lo + torch.where(travel > span, 2 * span - travel, travel))[:, :, None, None]  # (T, 2, 1, 1)
        mask = _shape_mask(kind, x - centre[:, 0], y - centre[:, 1], radius, angle)[..., None]
        video = video * (1 - mask) + color * mask if draw_shapes else video

    video = video.clamp(0, 1).permute(3, 0, 1, 2)  # (3, T, R, R)
    return (video * 2 - 1).float(), kinds


def synthetic_background(seed: int, frames: int, resolution: int) -> torch.Tensor:
    """Video `seed`'s moving background alone, float (3, T, R, R) in [-1, 1]: a real frame with
    no shape in it (the shape judge's "none" class)."""
    return _render(seed, frames, resolution, single_shape=True, draw_shapes=False)[0]


def synthetic_video(seed: int, frames: int, resolution: int, single_shape: bool = False,
                    shape_scale: float = 1.0) -> torch.Tensor:
    """One video as float (3, T, R, R) in [-1, 1], deterministic in its arguments; 1-2 shapes, or
    only the first of them, enlarged, with `single_shape` (the class-labelled set); its shapes
    drawn `shape_scale` times their size (see _render)."""
    return _render(seed, frames, resolution, single_shape, shape_scale=shape_scale)[0]


def synthetic_frames(seed: int, frames: int, resolution: int, single_shape: bool = False) -> np.ndarray:
    """synthetic_video as uint8 frames (T, R, R, 3), as written to disk."""
    from pvdm_core.io.video_io import to_uint8

    return to_uint8(synthetic_video(seed, frames, resolution, single_shape))


def synthetic_main_shape(seed: int) -> str:
    """The class of video `seed`: the kind of its first shape (its only one in the single-shape,
    class-labelled set). A 1-frame 4x4 render replays the same draws, at no cost."""
    return _render(seed, 1, 4, single_shape=True)[1][0]


class SyntheticVideoDataset(Dataset):
    """`count` videos with seeds first_seed, first_seed + 1, ... (the split is the seed range)."""

    def __init__(self, count: int, first_seed: int, frames: int, resolution: int, single_shape: bool = False):
        self.count, self.first_seed, self.frames, self.resolution = count, first_seed, frames, resolution
        self.single_shape = single_shape

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        i = key[0] if isinstance(key, tuple) else key  # (index, epoch): a synthetic video is one clip
        return synthetic_video(self.first_seed + i, self.frames, self.resolution, self.single_shape)

    def name(self, i: int) -> str:
        return f"synthetic/{self.first_seed + i:08d}"


def write_synthetic_videos(out_dir: Path, num: int, frames: int, resolution: int, first_seed: int,
                           fmt: str = "mp4", fps: float = 8.0, on_video: Callable[[], None] | None = None,
                           single_shape: bool = False) -> list[Path]:
    """Write `num` synthetic videos as files (a ready `real/` folder for every command); the file
    name `synthetic_<seed>` keeps the seed, from which the class label follows. The class-labelled
    set (`single_shape`) also gets labels.json (file name -> class name), so anyone can score
    samples per class without pvdm."""
    from pvdm_core.base.atomic import write_text_atomic
    from pvdm_core.io.video_io import write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if fmt == "frames" else f".{fmt}"
    paths = []
    for i in range(num):
        video = synthetic_frames(first_seed + i, frames, resolution, single_shape)
        paths.append(write_video(out_dir / f"synthetic_{first_seed + i:08d}{suffix}", video, fps=fps, fmt=fmt))
        if on_video:
            on_video()
    if single_shape:
        labels = {p.name: synthetic_main_shape(first_seed + i) for i, p in enumerate(paths)}
        write_text_atomic(out_dir / LABELS_FILE, json.dumps(labels, indent=1) + "\n")
    return paths
