"""The shape judge: a small CNN that names the shape of a class-labelled synthetic video.

Whether a class-conditional sample "is" a triangle is a property a viewer checks by eye; the
judge checks it for hundreds of videos (`pvdm demo`, benchmarks/classes.py, benchmarks/learning.py).
It learns from frames of real class-labelled synthetic videos (one shape each,
`data.class_labels: true`) from a seed range of its own, never a video of the diffusion model's
training or test split. Generated frames reach the screen through the autoencoder, whose blur
is not what separates the classes, so half of its training frames are degraded: either by the
autoencoder itself (`ae`, benchmarks/classes.py's judge) or, with no autoencoder (the demo's
judge, trained on real videos only), by blur, blocks and noise of the kinds a small patch
decoder adds (`degrade`). Its held-out accuracy on real videos is reported with every score, so a low share
of the requested class can be told apart from a judge that cannot see.

A judge that must pick one of three shapes names every smudge one of them: the first judge
called faint, shapeless samples "triangles" (benchmarks/RESULTS.md, "Learning"). So it has a
fourth class, "none", learnt from the same videos' backgrounds with no shape drawn (real frames
too, degraded alike): a sample judged "none" shows no shape a viewer could name, and counts as wrong.

The classes differ in size too (triangles are drawn largest, see data/synthetic.py), and a judge
that learns from shapes of one size reads size as class: the earlier judge named 22 of 24 small
real discs "triangle", and so counted large blobs as triangles (benchmarks/RESULTS.md, "Learning"
7). So each training video's shape is drawn at a random scale in [min_scale, 1] of its size
(`shape_scale`); the judge is still tested on the class set as it is, and on held-out videos of
random scale ("any_size").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pvdm_core.data.datasets import SYNTHETIC_TEST_OFFSET
from pvdm_core.data.synthetic import SHAPES, synthetic_background, synthetic_main_shape, synthetic_video

JUDGE_SEEDS = 2_000_000  # the judge's own videos: after the train (0..) and test (1,000,000..) seeds
JUDGE_MIN_SCALE = 0.5  # the smallest shape the judge learns from, relative to the class set's (radius >= 12% of the frame)


NONE = "none"  # the judge's class for a frame with no shape in it: its index is len(SHAPES)


def make_net(outputs: int = len(SHAPES) + 1) -> nn.Module:
    """Three conv stages 32 -> 4 px, then a linear layer on the 4 x 4 map (shape is where the
    corners are, so the map is not pooled away); one output per shape, and one for "none"."""
    stage = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]  # noqa: E731
    return nn.Sequential(*stage(3, 32), *stage(32, 64), *stage(64, 64), nn.Flatten(), nn.LazyLinear(outputs))


def real_videos(seeds: range, frames: int, resolution: int,
                scales: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(videos (N, 3, T, R, R) in [-1, 1], labels (N,)) of class-labelled synthetic videos; video i's
    shape drawn scales[i] times its size (default: as the class set draws it)."""
    scales = torch.ones(len(seeds)) if scales is None else scales
    videos = torch.stack([synthetic_video(s, frames, resolution, single_shape=True, shape_scale=float(k))
                          for s, k in zip(seeds, scales)])
    labels = torch.tensor([SHAPES.index(synthetic_main_shape(s)) for s in seeds])
    return videos, labels


@torch.no_grad()
def through_ae(ae: nn.Module, videos: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """The videos after the autoencoder (encode, decode), as generated videos are rendered."""
    return torch.cat([ae.decode(ae.encode(videos[i : i + batch])).float().clamp(-1, 1)
                      for i in range(0, len(videos), batch)])


def degrade(videos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N, 3, T, R, R) as a small decoder might draw them: each video box-downsampled by 2 or 4,
    scaled back bilinearly (blur) or by repetition (blocks of a patch decoder), plus Gaussian noise
    of std up to 0.1 (on the [-1, 1] scale); the choices are drawn per video from `generator`."""
    n, t = videos.shape[0], videos.shape[2]
    frames = rearrange(videos, "n c t h w -> (n t) c h w")
    factor = (2 ** torch.randint(1, 3, (n,), generator=generator)).repeat_interleave(t)
    blocky = (torch.rand(n, generator=generator) < 0.5).repeat_interleave(t)
    out = frames.clone()
    for k in (2, 4):
        for nearest in (False, True):
            on = (factor == k) & (blocky == nearest)
            if on.any():
                mode = {"mode": "nearest"} if nearest else {"mode": "bilinear", "align_corners": False}
                out[on] = F.interpolate(F.avg_pool2d(frames[on], k), scale_factor=k, **mode)
    noise_std = (0.1 * torch.rand(n, generator=generator)).repeat_interleave(t)[:, None, None, None]
    out = out + noise_std * torch.randn(out.shape, generator=generator)
    return rearrange(out.clamp(-1, 1), "(n t) c h w -> n c t h w", n=n)


def frames_of(videos: torch.Tensor) -> torch.Tensor:
    """(N, 3, T, H, W) -> (N * T, 3, H, W), frames of a video consecutive."""
    return rearrange(videos, "n c t h w -> (n t) c h w")


@dataclass
class Judge:
    net: nn.Module
    accuracy: dict[str, float]  # held-out accuracy per video: "real" (and "reconstructed" with an AE)
    train_seconds: float
    steps: int
    resolution: int = 32

    @torch.no_grad()
    def probabilities(self, videos: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) in [-1, 1] -> (N, classes): frame probabilities averaged over the video."""
        t = videos.shape[2]
        p = torch.cat([self.net(f).softmax(-1) for f in frames_of(videos).split(512)])
        return p.reshape(len(videos), t, -1).mean(1)

    def predict(self, videos: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) in [-1, 1] -> (N,) class indices."""
        return self.probabilities(videos).argmax(1)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "accuracy": self.accuracy, "train_seconds": self.train_seconds,
                "steps": self.steps, "resolution": self.resolution}

    @classmethod
    def from_state_dict(cls, state: dict) -> Judge:
        net = make_net(len(list(state["net"].values())[-1]))  # the last layer's bias; judges saved before "none": 3
        r = state.get("resolution", 32)
        net(torch.zeros(1, 3, r, r))  # materialise the lazy layer, then load
        net.load_state_dict(state["net"])
        return cls(net.eval(), state["accuracy"], state["train_seconds"], state["steps"], r)


def backgrounds(seeds: range, frames: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(videos (N, 3, T, R, R) with no shape drawn, labels (N,) all "none")."""
    videos = torch.stack([synthetic_background(s, frames, resolution) for s in seeds])
    return videos, torch.full((len(seeds),), len(SHAPES))


def train_judge(ae: nn.Module | None = None, n_train: int = 4096, n_test: int = 192, frames: int = 16,
                resolution: int = 32, max_steps: int = 900, max_seconds: float = 300.0, seed: int = 0,
                none_class: bool = True, min_scale: float = JUDGE_MIN_SCALE) -> Judge:
    """Train on 4 frames of each of n_train videos (shapes at random scales in [min_scale, 1]) and
    of their blurred copies (through `ae`, or box-blurred without one), plus n_train / 3 shapeless
    backgrounds ("none") with `none_class`; test on every frame of n_test held-out test-split
    videos as the class set draws them, of n_test at random scales, and of n_test / 3 backgrounds."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    scale = lambda n: min_scale + (1 - min_scale) * torch.rand(n, generator=g)  # noqa: E731
    x, y = real_videos(range(JUDGE_SEEDS, JUDGE_SEEDS + n_train), frames, resolution, scale(n_train))
    if none_class:  # their own seeds, after the shapes' ones
        bx, by = backgrounds(range(JUDGE_SEEDS + n_train, JUDGE_SEEDS + n_train + n_train // 3), frames, resolution)
        x, y = torch.cat([x, bx]), torch.cat([y, by])
    every = frames // 4
    blurred = through_ae(ae, x)[:, :, ::every] if ae is not None else degrade(x[:, :, ::every], g)
    x = torch.cat([x[:, :, ::every], blurred])  # (2 N, 3, 4, R, R)
    y = torch.cat([y, y])
    fx, fy = frames_of(x), y.repeat_interleave(x.shape[2])  # (8 N, 3, R, R), (8 N,)
    net = make_net(len(SHAPES) + none_class)
    net(fx[:1])  # materialise the lazy layer before the optimizer sees the parameters
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    t0, step = time.monotonic(), 0
    while step < max_steps and time.monotonic() - t0 < max_seconds:
        idx = torch.randint(0, len(fx), (128,), generator=g)
        loss = nn.functional.cross_entropy(net(fx[idx]), fy[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    judge = Judge(net.eval(), {}, time.monotonic() - t0, step, resolution)
    test = range(SYNTHETIC_TEST_OFFSET, SYNTHETIC_TEST_OFFSET + n_test)
    tx, ty = real_videos(test, frames, resolution)
    judge.accuracy["real"] = float((judge.predict(tx) == ty).float().mean())
    test_any = range(SYNTHETIC_TEST_OFFSET + 2 * n_test, SYNTHETIC_TEST_OFFSET + 3 * n_test)
    ax, ay = real_videos(test_any, frames, resolution, scale(n_test))
    judge.accuracy["any_size"] = float((judge.predict(ax) == ay).float().mean())
    if none_class:
        bx, by = backgrounds(range(SYNTHETIC_TEST_OFFSET + n_test, SYNTHETIC_TEST_OFFSET + n_test + n_test // 3), frames, resolution)
        judge.accuracy["none"] = float((judge.predict(bx) == by).float().mean())
    if ae is not None:
        judge.accuracy["reconstructed"] = float((judge.predict(through_ae(ae, tx)) == ty).float().mean())
    return judge


def to_float_videos(videos: np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) as written by `pvdm sample --format npz` -> (N, 3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
