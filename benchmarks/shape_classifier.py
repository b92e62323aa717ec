"""A small CNN that tells the synthetic set's shapes apart: the judge of benchmarks/classes.py.

Whether a class-conditional sample "is" a triangle is a property a viewer checks by eye; this
classifier checks it for hundreds of videos. It is trained on frames of real class-labelled
synthetic videos (one shape each, `data.class_labels: true`) from a seed range of their own (no
video of the diffusion model's training or test split), as they are and after the benchmark's
autoencoder (encode + decode), because generated frames reach the screen through that decoder
and its blur is not what separates the classes. Many videos with few frames each: trained on
the 512 training videos' every frame it learns their colours, not their shapes (55% held out). Its held-out accuracy, on
real frames and on reconstructions, is reported with every result, so a low share of the
requested class can be told apart from a judge that cannot see.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pvdm_core.data.datasets import SYNTHETIC_TEST_OFFSET
from pvdm_core.data.synthetic import SHAPES, synthetic_main_shape, synthetic_video


JUDGE_SEEDS = 2_000_000  # the judge's own videos: after the train (0..) and test (1,000,000..) seeds


def make_net() -> nn.Module:
    """Three conv stages 32 -> 4 px, then a linear layer on the 4 x 4 map (shape is where the
    corners are, so the map is not pooled away)."""
    stage = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]  # noqa: E731
    return nn.Sequential(*stage(3, 32), *stage(32, 64), *stage(64, 64), nn.Flatten(), nn.LazyLinear(len(SHAPES)))


def real_videos(seeds: range, frames: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(videos (N, 3, T, R, R) in [-1, 1], labels (N,)) of class-labelled synthetic videos."""
    videos = torch.stack([synthetic_video(s, frames, resolution, single_shape=True) for s in seeds])
    labels = torch.tensor([SHAPES.index(synthetic_main_shape(s)) for s in seeds])
    return videos, labels


@torch.no_grad()
def through_ae(ae, videos: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """The videos after the autoencoder (encode, decode), as generated videos are rendered."""
    return torch.cat([ae.decode(ae.encode(videos[i : i + batch])).float().clamp(-1, 1)
                      for i in range(0, len(videos), batch)])


def frames_of(videos: torch.Tensor) -> torch.Tensor:
    """(N, 3, T, H, W) -> (N * T, 3, H, W), frames of a video consecutive."""
    return videos.permute(0, 2, 1, 3, 4).reshape(-1, *videos.shape[1:2], *videos.shape[3:])


@dataclass
class Judge:
    net: nn.Module
    accuracy: dict[str, float]  # held-out accuracy per video: "real", "reconstructed"
    train_seconds: float
    steps: int

    @torch.no_grad()
    def probabilities(self, videos: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) in [-1, 1] -> (N, classes): frame probabilities averaged over the video."""
        t = videos.shape[2]
        p = torch.cat([self.net(f).softmax(-1) for f in frames_of(videos).split(512)])
        return p.reshape(len(videos), t, -1).mean(1)


def train_judge(ae, n_train: int = 4096, n_test: int = 192, frames: int = 16, resolution: int = 32,
                max_steps: int = 900, max_seconds: float = 300.0, seed: int = 0) -> Judge:
    """Train on 4 frames of each of n_train videos and of their reconstructions; test on every
    frame of n_test held-out test-split videos."""
    torch.manual_seed(seed)
    x, y = real_videos(range(JUDGE_SEEDS, JUDGE_SEEDS + n_train), frames, resolution)
    keep = slice(0, frames, frames // 4)
    x = torch.cat([x[:, :, keep], through_ae(ae, x)[:, :, keep]])  # (2 N, 3, 4, R, R)
    y = torch.cat([y, y])
    fx, fy = frames_of(x), y.repeat_interleave(x.shape[2])  # (8 N, 3, R, R), (8 N,)
    net = make_net()
    net(fx[:1])  # materialise the lazy layer before the optimizer sees the parameters
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    t0, step = time.monotonic(), 0
    while step < max_steps and time.monotonic() - t0 < max_seconds:
        idx = torch.randint(0, len(fx), (128,), generator=g)
        loss = nn.functional.cross_entropy(net(fx[idx]), fy[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    judge = Judge(net.eval(), {}, time.monotonic() - t0, step)
    test = range(SYNTHETIC_TEST_OFFSET, SYNTHETIC_TEST_OFFSET + n_test)
    tx, ty = real_videos(test, frames, resolution)
    for name, videos in (("real", tx), ("reconstructed", through_ae(ae, tx))):
        judge.accuracy[name] = float((judge.probabilities(videos).argmax(1) == ty).float().mean())
    return judge


def to_float_videos(videos: np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) as written by `pvdm sample --format npz` -> (N, 3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
