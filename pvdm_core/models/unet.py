"""Triplane UNet: the PVDM denoiser (ADM/LDM-style UNet over three 2D latent planes).

A clip's latent is three planes: z_s (B, C, h, w) "content", z_h (B, C, T, w) and
z_w (B, C, T, h) "motion". The network follows the public release's layout:

- the same 2D blocks (shared weights) run on each plane separately, each plane down/up-sampled
  on its own; planes that share a spatial shape (z_h and z_w when h == w) are batched together;
- each block is a ResBlock (scale-shift GroupNorm, time embedding 4 x base) followed, at the
  levels in `attn_levels` and in the middle, by per-plane self-attention;
- after every block (down, middle, up) at every level, one attention layer runs jointly over the
  tokens of all three planes concatenated, so content and motion planes exchange information;
- the previous clip's clean latents are concatenated on channels with the noisy ones
  (C + C input channels); `cond=None` means zeros (unconditional);
- on CPU, a convolution over small planes (at most `PLANE_GEMM_MAX_PIXELS` pixels per example
  over the three planes) runs as one im2col GEMM over all planes (`conv_groups`); the same sums
  in another order, float32 round-off apart; `PVDM_PLANE_GEMM=0` turns it off;
- optionally (`plane_embedding`, not in the reference) a learned vector per plane is added to
  the time embedding, ADM's class-embedding mechanism with the plane as the class;
- optionally (`num_classes` > 0, not in the reference) a learned class-label embedding is added
  to the time embedding (ADM's way), with one extra "null" label that classifier-free guidance
  trains by label dropout and samples as the unconditional branch.

Parameters: 528.3M at the reference config (base 256, mult [1, 2, 4, 4], 2 res blocks,
attention levels [0, 1, 2], 8 heads), 132.2M at base 128; the joint-attention layers are
58.3M / 14.6M of that.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pvdm_core.base.config import UNetConfig
from pvdm_core.base.errors import BadInputError

GROUPS = 32  # GroupNorm groups, as in ADM/LDM

# oneDNN's CPU convolution runs far below the matmul rate on small planes (1024 channels at 8x8
# and below: 9-22 GFLOP/s where 32x32 reaches 37; benchmarks/RESULTS.md, "Where a step's time
# goes"). Up to this many pixels per example over the planes, a convolution runs as one im2col
# GEMM over the pixels of all plane groups, which also reads its weights once instead of once
# per group. The threshold counts pixels per example, not per batch, so the kernel that runs does
# not depend on the batch size (guided sampling doubles it).
PLANE_GEMM_MAX_PIXELS = 256


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps t (B,) -> (B, dim): [cos, sin]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUPS, channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def plane_gemm_enabled() -> bool:
    return os.environ.get("PVDM_PLANE_GEMM", "1") != "0"


def conv_groups(conv: nn.Conv2d, groups: list[Tensor]) -> list[Tensor]:
    """`conv` (stride 1) applied to each (N, C, H, W) group: one im2col GEMM over all groups' pixels
    on CPU when an example's planes hold at most PLANE_GEMM_MAX_PIXELS pixels, else per group."""
    pixels = sum(g.shape[2] * g.shape[3] for g in groups)
    if groups[0].device.type != "cpu" or pixels > PLANE_GEMM_MAX_PIXELS or not plane_gemm_enabled():
        return [conv(g) for g in groups]
    cols = [rearrange(F.unfold(g, conv.kernel_size, padding=conv.padding), "n ckk l -> ckk (n l)") for g in groups]
    out = torch.addmm(conv.bias[:, None], conv.weight.flatten(1), torch.cat(cols, dim=1))  # (C_out, sum N*H*W)
    sizes = [c.shape[1] for c in cols]
    return [rearrange(o, "c (n h w) -> n c h w", n=g.shape[0], h=g.shape[2]).contiguous()
            for o, g in zip(out.split(sizes, dim=1), groups)]


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, scale-shift by the time embedding, GroupNorm-SiLU-dropout-conv(zero).

    `down`/`up` resample both branches between the first norm and the first conv (residual
    up/down sampling of ADM): 2x2 average pooling / nearest-neighbour 2x upsampling.
    """

    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float,
                 down: bool = False, up: bool = False):
        super().__init__()
        self.down, self.up = down, up
        self.in_norm = _norm(channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_channels, 2 * out_channels)  # -> (scale, shift)
        self.out_norm = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.down:
            return F.avg_pool2d(x, 2)
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, xs: list[Tensor], embs: list[Tensor]) -> list[Tensor]:
        """xs: the plane groups (k*B, C, H, W), embs their (k*B, E) embeddings."""
        hs = conv_groups(self.in_conv, [self._resample(F.silu(self.in_norm(x))) for x in xs])
        xs = [self._resample(x) for x in xs]
        for i, (h, emb) in enumerate(zip(hs, embs)):
            e = self.emb_proj(F.silu(emb)).to(h.dtype)  # (k*B, 2C): one row per plane of the group
            scale, shift = e[:, :, None, None].chunk(2, dim=1)
            hs[i] = self.dropout(F.silu(self.out_norm(h) * (1 + scale) + shift))
        hs = conv_groups(self.out_conv, hs)
        skips = xs if isinstance(self.skip, nn.Identity) else conv_groups(self.skip, xs)
        return [s + h for s, h in zip(skips, hs)]


class Attention(nn.Module):
    """Multi-head self-attention over tokens (N, C, L) with GroupNorm, residual, zero-init output."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = _zero(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x).transpose(1, 2)  # (N, L, C)
        q, k, v = rearrange(self.qkv(h), "n l (three h d) -> three n h l d", three=3, h=self.heads)
        h = F.scaled_dot_product_attention(q, k, v)
        h = self.proj(rearrange(h, "n h l d -> n l (h d)"))
        return x + h.transpose(1, 2)


class Block(nn.Module):
    """One UNet block run on the plane groups, each a (k*B, C, H, W) batch of same-shaped planes."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, xs: list[Tensor], embs: list[Tensor]) -> list[Tensor]:
        for layer in self.layers:
            if isinstance(layer, ResBlock):
                xs = layer(xs, embs)
            else:  # per-plane attention over each plane's H*W tokens
                xs = [layer(x.flatten(2)).view_as(x) for x in xs]
        return xs


# A "grouped" activation: planes with the same spatial shape stacked on the batch axis.
# groups[g] is (k_g * B, C, H_g, W_g) holding planes index[g] in order.


def _joint_attention(attn: Attention, groups: list[Tensor], batch: int) -> list[Tensor]:
    """Run `attn` once over the tokens of all planes of each example concatenated."""
    toks, sizes = [], []
    for x in groups:
        toks.append(rearrange(x, "(k b) c h w -> b c (k h w)", b=batch))
        sizes.append(toks[-1].shape[-1])
    out = attn(torch.cat(toks, dim=-1)).split(sizes, dim=-1)
    return [
        rearrange(o, "b c (k h w) -> (k b) c h w", h=x.shape[2], w=x.shape[3])
        for o, x in zip(out, groups)
    ]


class TriplaneUNet(nn.Module):
    """Denoising UNet over three latent planes, optionally conditioned on a previous clip.

    forward(x, t, cond, label) with x = (z_s, z_h, z_w) noisy planes, t (B,) timesteps (a scalar
    is broadcast), cond the previous clip's clean planes or None (= zeros) and label (B,) class
    indices, -1 or None for the null label (class-conditional models only); returns one output
    per plane (epsilon, or v under `diffusion.prediction: v`), in x's container type (a
    NamedTuple stays that NamedTuple, anything else becomes a tuple).
    """

    def __init__(self, cfg: UNetConfig, latent_channels: int = 4):
        super().__init__()
        base, mult = cfg.base_channels, list(cfg.channel_mult)
        if not mult:
            raise BadInputError("unet.channel_mult must name at least one level")
        bad = [lv for lv in cfg.attn_levels if not 0 <= lv < len(mult)]
        if bad:
            raise BadInputError(f"unet.attn_levels {bad} out of range: levels are 0..{len(mult) - 1}")
        for ch in {base * m for m in mult}:
            if ch % GROUPS or ch % cfg.heads:
                raise BadInputError(
                    f"UNet width {ch} (base_channels x channel_mult) must be divisible by {GROUPS} "
                    f"(GroupNorm groups) and by unet.heads={cfg.heads}"
                )
        self.cfg = cfg
        self.latent_channels = latent_channels
        self.levels = len(mult)
        self.grad_checkpoint = cfg.grad_checkpoint
        attn_levels, heads, drop = set(cfg.attn_levels), cfg.heads, cfg.dropout
        emb_ch = 4 * base

        self.time_embed = nn.Sequential(nn.Linear(base, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        self.plane_embed = nn.Embedding(3, emb_ch) if cfg.plane_embedding else None
        self.label_embed = nn.Embedding(cfg.num_classes + 1, emb_ch) if cfg.num_classes > 0 else None
        self.conv_in = nn.Conv2d(2 * latent_channels, base, 3, padding=1)

        # Encoder: num_res_blocks blocks per level, then a down-sampling ResBlock (not after the
        # last level). A joint attention follows every block.
        self.down_blocks, self.down_joint = nn.ModuleList(), nn.ModuleList()
        skip_chs, ch = [base], base
        for level, m in enumerate(mult):
            for _ in range(cfg.num_res_blocks):
                layers = [ResBlock(ch, emb_ch, base * m, drop)]
                ch = base * m
                if level in attn_levels:
                    layers.append(Attention(ch, heads))
                self.down_blocks.append(Block(*layers))
                self.down_joint.append(Attention(ch, heads))
                skip_chs.append(ch)
            if level != len(mult) - 1:
                self.down_blocks.append(Block(ResBlock(ch, emb_ch, ch, drop, down=True)))
                self.down_joint.append(Attention(ch, heads))
                skip_chs.append(ch)

        self.mid_block = Block(
            ResBlock(ch, emb_ch, ch, drop), Attention(ch, heads), ResBlock(ch, emb_ch, ch, drop)
        )
        self.mid_joint = Attention(ch, heads)

        # Decoder: num_res_blocks + 1 blocks per level, each taking one skip; the last block of
        # every level but the first ends with an up-sampling ResBlock.
        self.up_blocks, self.up_joint = nn.ModuleList(), nn.ModuleList()
        for level, m in reversed(list(enumerate(mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_chs.pop(), emb_ch, base * m, drop)]
                ch = base * m
                if level in attn_levels:
                    layers.append(Attention(ch, heads))
                if level and i == cfg.num_res_blocks:
                    layers.append(ResBlock(ch, emb_ch, ch, drop, up=True))
                self.up_blocks.append(Block(*layers))
                self.up_joint.append(Attention(ch, heads))

        self.out = nn.Sequential(_norm(ch), nn.SiLU(), _zero(nn.Conv2d(ch, latent_channels, 3, padding=1)))

    # -- input checks -----------------------------------------------------------------------
    def _check(self, x: Sequence[Tensor], cond: Sequence[Tensor] | None, t: Tensor) -> None:
        if len(x) != 3:
            raise BadInputError(f"TriplaneUNet expects 3 latent planes (z_s, z_h, z_w), got {len(x)}")
        batch, div = x[0].shape[0], 2 ** (self.levels - 1)
        for name, p in zip(("z_s", "z_h", "z_w"), x):
            if p.ndim != 4 or p.shape[0] != batch or p.shape[1] != self.latent_channels:
                raise BadInputError(
                    f"plane {name} must be (B={batch}, C={self.latent_channels}, H, W), got {tuple(p.shape)}"
                )
            if p.shape[2] % div or p.shape[3] % div:
                raise BadInputError(
                    f"plane {name} of size {tuple(p.shape[2:])} is not divisible by {div} "
                    f"(2**(levels-1) for {self.levels} UNet levels)"
                )
        if cond is not None:
            if len(cond) != 3 or any(c.shape != p.shape for c, p in zip(cond, x)):
                raise BadInputError(
                    f"cond planes {[tuple(c.shape) for c in cond]} must match the noisy planes "
                    f"{[tuple(p.shape) for p in x]}"
                )
        if t.ndim != 1 or t.shape[0] != batch:
            raise BadInputError(f"t must have shape ({batch},), got {tuple(t.shape)}")

    def _labels(self, label: Tensor | None, batch: int, device: torch.device) -> Tensor:
        """(B,) embedding rows: label None, or -1 in a row, is the null label (index num_classes)."""
        null = self.cfg.num_classes
        if label is None:
            return torch.full((batch,), null, dtype=torch.long, device=device)
        label = torch.as_tensor(label, device=device).long()
        if label.shape != (batch,) or bool((label >= null).any()):
            raise BadInputError(f"labels must be ({batch},) in -1..{null - 1}, got {label.tolist()}")
        return torch.where(label < 0, null, label)

    # -- forward ----------------------------------------------------------------------------
    def _run(self, fn, *args):
        if self.grad_checkpoint and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(self, x: Sequence[Tensor], t: Tensor, cond: Sequence[Tensor] | None = None,
                label: Tensor | None = None):
        t = torch.as_tensor(t, device=x[0].device)
        if t.ndim == 0:  # one timestep for the whole batch
            t = t.expand(x[0].shape[0])
        self._check(x, cond, t)
        batch = x[0].shape[0]
        if cond is None:
            h_planes = [torch.cat([p, torch.zeros_like(p)], dim=1) for p in x]
        else:
            h_planes = [torch.cat([p, c.to(p.dtype)], dim=1) for p, c in zip(x, cond)]

        # Group planes of identical spatial shape (z_h and z_w when h == w) on the batch axis.
        index: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(h_planes):
            index.setdefault(tuple(p.shape[2:]), []).append(i)
        order = list(index.values())
        groups = [torch.cat([h_planes[i] for i in idx], dim=0) for idx in order]

        emb = self.time_embed(timestep_embedding(t, self.cfg.base_channels).to(x[0].dtype))  # (B, E)
        if self.label_embed is not None:
            emb = emb + self.label_embed(self._labels(label, batch, t.device)).to(emb.dtype)  # (B, E)
        elif label is not None and bool((label >= 0).any()):
            raise BadInputError("this model has no class labels (unet.num_classes is 0); sample without --class")
        plane_embs = [emb + self.plane_embed.weight[i] if self.plane_embed is not None else emb for i in range(3)]
        embs = [torch.cat([plane_embs[i] for i in idx]) for idx in order]  # (k*B, E) per group
        n_groups = len(groups)

        def block_fn(block, joint):
            def fn(*args):  # the group embeddings, then the group activations
                gs = block(list(args[n_groups:]), list(args[:n_groups]))
                return tuple(_joint_attention(joint, gs, batch))
            return fn

        groups = conv_groups(self.conv_in, groups)
        skips = [groups]
        for block, joint in zip(self.down_blocks, self.down_joint):
            groups = list(self._run(block_fn(block, joint), *embs, *groups))
            skips.append(groups)
        groups = list(self._run(block_fn(self.mid_block, self.mid_joint), *embs, *groups))
        for block, joint in zip(self.up_blocks, self.up_joint):
            groups = [torch.cat([g, s], dim=1) for g, s in zip(groups, skips.pop())]
            groups = list(self._run(block_fn(block, joint), *embs, *groups))
        norm, act, conv_out = self.out
        groups = conv_groups(conv_out, [act(norm(g)) for g in groups])

        out: list[Tensor | None] = [None, None, None]
        for idx, g in zip(order, groups):
            for i, part in zip(idx, g.chunk(len(idx), dim=0)):
                out[i] = part
        return type(x)(*out) if hasattr(x, "_fields") else tuple(out)

