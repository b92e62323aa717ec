"""Triplane latents as "planes": a tuple (or NamedTuple) of tensors such as (z_s, z_h, z_w); a
single tensor works too. Every op here is applied plane by plane and returns the input's
container type. Noise is drawn from a generator (on the generator's device, then moved), so
CPU results are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import torch
from torch import Tensor

Planes = Union[Tensor, Sequence[Tensor]]  # (z_s, z_h, z_w), a NamedTuple of them, or one tensor


def plane_map(fn: Callable[..., Tensor], *planes: Planes) -> Planes:
    """fn applied plane by plane to one or more plane tuples; keeps the first one's container."""
    first = planes[0]
    if isinstance(first, Tensor):
        return fn(*planes)
    out = [fn(*ps) for ps in zip(*planes, strict=True)]
    return type(first)(*out) if hasattr(first, "_fields") else tuple(out)


def plane_list(x: Planes) -> list[Tensor]:
    return [x] if isinstance(x, Tensor) else list(x)


class FlatNoise:
    """Noise in the release's layout: each draw is one (B, C, sum of plane sizes) torch.randn from
    one generator, split into the planes in order (z_s | z_h | z_w, the release's xy | yt | xt).
    The release also draws at every step, even where the draw is multiplied by zero (DDIM with
    eta = 0, the last DDPM step), so a seed reproduces its samples, later clips included."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def like(self, x: Planes) -> Planes:
        planes = plane_list(x)
        sizes = [p[0, 0].numel() for p in planes]
        flat = torch.randn((*planes[0].shape[:2], sum(sizes)), generator=self.generator,
                           device=self.generator.device, dtype=planes[0].dtype).to(planes[0].device)
        return plane_map(lambda p, f: f.reshape(p.shape), x, tuple(flat.split(sizes, dim=-1)))


Noise = Union[torch.Generator, Sequence[torch.Generator], FlatNoise, None]


def plane_randn_like(x: Planes, generator: Noise = None) -> Planes:
    """Standard normal noise shaped like x: one torch.randn per plane, in plane order.

    A list of generators, one per batch row, draws row b from generators[b] alone, so a
    sample's noise does not depend on which batch it was drawn in; a FlatNoise draws the
    release's layout.
    """
    if isinstance(generator, FlatNoise):
        return generator.like(x)
    if isinstance(generator, (list, tuple)):
        rows = [plane_randn_like(plane_map(lambda p: p[b : b + 1], x), g) for b, g in enumerate(generator)]
        return plane_map(lambda *r: torch.cat(r), *rows)

    def draw(p: Tensor) -> Tensor:
        device = generator.device if generator is not None else p.device
        return torch.randn(p.shape, generator=generator, device=device, dtype=p.dtype).to(p.device)

    return plane_map(draw, x)


def plane_mse(a: Planes, b: Planes, weights: Tensor | None = None, plane_weights: Sequence[float] | None = None) -> Tensor:
    """Mean squared error over all latent numbers of all planes (planes weighted by size); with
    `weights` (B,), example b's squared errors count weights[b] times; with `plane_weights`, plane
    k's count plane_weights[k] times (a weighted mean: all ones is the plain one)."""
    pa, pb = plane_list(a), plane_list(b)
    pw = [1.0] * len(pa) if plane_weights is None else [float(w) for w in plane_weights]  # checked by DiffusionConfig
    total = sum(w * p.numel() for w, p in zip(pw, pa, strict=True))
    squared = [w * (x.float() - y.float()) ** 2 for w, x, y in zip(pw, pa, pb, strict=True)]
    if weights is None:
        return sum(sq.sum() for sq in squared) / total
    return (weights.float() * sum(sq.flatten(1).sum(1) for sq in squared)).sum() / total


def plane_std(x: Planes) -> tuple[float, ...]:
    """Standard deviation of each plane over all its numbers."""
    return tuple(float(p.float().std()) for p in plane_list(x))


def scale_planes(x: Planes, factors: Sequence[float]) -> Planes:
    """Plane k times factors[k]: latents to unit variance (1 / plane_std) and back (plane_std)."""
    return plane_map(lambda p, f: p * f, x, tuple(factors))
