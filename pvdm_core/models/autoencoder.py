"""PVDM's projected autoencoder (spec §1): a video clip <-> three 2D latent planes.

Encoder: per-frame p x p patches -> video transformer (time attention, space attention, GEGLU)
-> three small "axis projection" transformers that each pool one axis away -> 1x1 conv to C
channels -> tanh. Decoder: each plane back to width d, broadcast along its missing axis, summed,
video transformer, per-frame transposed conv to pixels, 2 * sigmoid - 1.

Shapes: x (B, 3, T, H, W) in [-1, 1]; h = H/p, w = W/p;
z_s (B, C, h, w) content, z_h (B, C, T, w) pooled over height, z_w (B, C, T, h) over width.

The forward pass is the public release's (spec §7; `pvdm convert` loads its checkpoints and
`benchmarks/vs_release.py` checks the outputs): no final LayerNorm in the transformer stacks, the
projection reads out sequence index 0 with its token appended at the end, and the release's
time and space rotary tables. pvdm generalises it to any frame count and any resolution the
patch divides (the release hard-codes 16 frames, 256 px and patch 8). Differences that do not
change outputs: q/k/v and GEGLU value/gate are separate Linear layers (a converter splits the
release's fused rows), SDPA attention, chunked time attention for huge batches, and the last
projection layer computing only the position it reads out. The initialisation (normal 0.02,
GPT-2 style) is pvdm's; the release uses PyTorch's defaults and unit-normal tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pvdm_core.base.config import AEConfig
from pvdm_core.base.errors import BadInputError

# CUDA attention kernels put the batch on a launch-grid axis limited to 65535 rows, which time
# attention over every spatial position of a large batch can exceed; bigger batches are chunked.
_SDPA_MAX_BATCH = 32768


class Latents(NamedTuple):
    """The three latent planes of a batch of clips; each lies in [-1, 1]."""

    z_s: Tensor  # (B, C, h, w) content, shared by all frames
    z_h: Tensor  # (B, C, T, w) motion seen from above (height pooled away)
    z_w: Tensor  # (B, C, T, h) motion seen from the side (width pooled away)

    def map(self, fn: Callable[[Tensor], Tensor]) -> Latents:
        return Latents(*(fn(z) for z in self))

    def to(self, *args, **kwargs) -> Latents:
        return self.map(lambda z: z.to(*args, **kwargs))

    def float(self) -> Latents:
        return self.map(lambda z: z.float())

    def detach(self) -> Latents:
        return self.map(lambda z: z.detach())

    def take(self, idx: int | slice | Tensor) -> Latents:
        """Select along the batch axis (named `take` because tuple already owns `index`)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)  # keep the batch axis
        return self.map(lambda z: z[idx])

    @property
    def batch_size(self) -> int:
        return self.z_s.shape[0]

    @staticmethod
    def cat(items: Sequence[Latents]) -> Latents:
        return Latents(*(torch.cat(planes, dim=0) for planes in zip(*items)))


# --- rotary position embeddings (the release's tables, spec §7 items 3-4) --------------------
# A table is (cos, sin), each (L, head_dim); channel j of q and k is mixed with its pair partner
# as q * cos + rotate_every_two(q) * sin. The tables are computed with the release's own float32
# operations, so they match it bit for bit.

Rope = tuple[Tensor, Tensor]


def rope_time(t: int, head_dim: int, device: torch.device) -> Rope:
    """1D time table of the release (lucidrains' RotaryEmbedding): frequencies 10000^(-2k/d),
    the (T, d/2) angle table concatenated with itself, not interleaved. Channels 2i and 2i+1 thus
    turn by different angles: not a true rotation, but the layout the released weights expect."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.arange(t, device=device).float()[:, None] * inv_freq  # (T, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d)
    return angles.cos(), angles.sin()


def rope_space(h: int, w: int, head_dim: int, device: torch.device, max_freq: float = 10.0) -> Rope:
    """Axial 2D table of the release (AxialRotaryEmbedding): positions linspace(-1, 1) along rows
    and columns, frequencies pi * 2^linspace(0, log2(max_freq / 2), d/4); the first d/4 channel
    pairs follow the row, the next d/4 the column, both channels of a pair share the angle."""
    scales = torch.logspace(0.0, math.log(max_freq / 2) / math.log(2), head_dim // 4, base=2, device=device)
    rows = torch.linspace(-1.0, 1.0, h, device=device)[:, None] * scales * math.pi  # (h, d/4)
    cols = torch.linspace(-1.0, 1.0, w, device=device)[:, None] * scales * math.pi  # (w, d/4)
    angles = torch.cat([rows[:, None].expand(h, w, -1), cols[None].expand(h, w, -1)], dim=-1)  # (h, w, d/2)
    angles = repeat(angles, "h w k -> (h w) (k two)", two=2)  # (h*w, d)
    return angles.cos(), angles.sin()


def rotate_every_two(x: Tensor) -> Tensor:
    """Channel pairs (x1, x2) -> (-x2, x1)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rope(x: Tensor, rope: Rope) -> Tensor:
    """x (..., L, d) mixed with its pair partners by a (cos, sin) table (L, d), in float32."""
    cos, sin = rope
    xf = x.float()
    return (xf * cos + rotate_every_two(xf) * sin).to(x.dtype)


# --- transformer parts ---------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, dim)

    def forward(self, x: Tensor, rope: Rope | None = None, context: Tensor | None = None) -> Tensor:
        """x (N, L, dim) attends to context (N, S, dim), default itself; rope only for self-attention."""
        q = rearrange(self.to_q(x), "n l (h d) -> n h l d", h=self.heads)
        kv = self.to_kv(x if context is None else context)
        k, v = rearrange(kv, "n s (two h d) -> two n h s d", two=2, h=self.heads)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        if q.shape[0] <= _SDPA_MAX_BATCH:
            o = F.scaled_dot_product_attention(q, k, v)  # (N, heads, L, head_dim)
        else:
            chunks = zip(*(t.split(_SDPA_MAX_BATCH) for t in (q, k, v)))
            o = torch.cat([F.scaled_dot_product_attention(*c) for c in chunks])
        return self.out(rearrange(o, "n h l d -> n l (h d)"))


class GEGLU(nn.Module):
    """Feed-forward with a GELU-gated hidden layer of width `hidden`. Value and gate have their
    own Linear (same parameters as one 2*hidden Linear) so no chunk/cat copies are needed."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.value = nn.Linear(dim, hidden)
        self.gate = nn.Linear(dim, hidden)
        self.proj_out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_out(self.value(x) * F.gelu(self.gate(x)))


class VideoBlock(nn.Module):
    """Pre-LN: attention over time (per position), over space (per frame), then GEGLU."""

    def __init__(self, dim: int, heads: int, head_dim: int, ff_mult: int):
        super().__init__()
        self.norm_t, self.attn_t = nn.LayerNorm(dim), Attention(dim, heads, head_dim)
        self.norm_s, self.attn_s = nn.LayerNorm(dim), Attention(dim, heads, head_dim)
        self.norm_ff, self.ff = nn.LayerNorm(dim), GEGLU(dim, ff_mult * dim)

    def forward(self, x: Tensor, rope_t: Rope, rope_s: Rope) -> Tensor:  # x (B, T, n, d)
        b, t, n, _ = x.shape
        xt = rearrange(x, "b t n d -> (b n) t d")
        xt = xt + self.attn_t(self.norm_t(xt), rope_t)
        x = rearrange(xt, "(b n) t d -> (b t) n d", b=b, n=n)
        x = x + self.attn_s(self.norm_s(x), rope_s)
        x = x + self.ff(self.norm_ff(x))
        return rearrange(x, "(b t) n d -> b t n d", b=b, t=t)


def run_layer(layer: nn.Module, recompute: bool, *args, **kwargs) -> Tensor:
    """layer(*args, **kwargs); with `recompute` (gradient checkpointing), while training with
    gradients on, its activations are recomputed in backward instead of kept: less memory."""
    if recompute and layer.training and torch.is_grad_enabled():
        return checkpoint(layer, *args, use_reentrant=False, **kwargs)
    return layer(*args, **kwargs)


class VideoTransformer(nn.Module):
    """TimeSformer-style stack over (B, T, h, w, d) tokens. Like the release's, it ends without a
    final LayerNorm (pre-LN stacks usually have one)."""

    def __init__(self, dim: int, depth: int, heads: int, head_dim: int, ff_mult: int):
        super().__init__()
        self.head_dim = head_dim
        self.blocks = nn.ModuleList(VideoBlock(dim, heads, head_dim, ff_mult) for _ in range(depth))
        self.grad_checkpoint = False  # recompute each block in backward: less memory, ~1/3 slower

    def forward(self, x: Tensor) -> Tensor:  # (B, T, h, w, d)
        _, t, h, w, _ = x.shape
        rope_t = rope_time(t, self.head_dim, x.device)  # (T, head_dim) each
        rope_s = rope_space(h, w, self.head_dim, x.device)  # (h*w, head_dim) each
        x = rearrange(x, "b t h w d -> b t (h w) d")
        for block in self.blocks:
            x = run_layer(block, self.grad_checkpoint, x, rope_t, rope_s)
        return rearrange(x, "b t (h w) d -> b t h w d", h=h)


class ProjectionLayer(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int):
        super().__init__()
        self.norm_attn, self.attn = nn.LayerNorm(dim), Attention(dim, heads, head_dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: Tensor, first_only: bool = False) -> Tensor:  # x (N, L+1, d)
        h = self.norm_attn(x)
        if first_only:  # the last layer need only update the position read out: same result, far less work
            x = x[:, :1]
        x = x + self.attn(h[:, : x.shape[1]], context=h)
        return x + self.mlp(self.norm_mlp(x))


class AxisProjection(nn.Module):
    """Pools sequences (N, L, d) along L into (N, C), as the release does: a learnable token is
    appended at the END, a learned position embedding added, a small pre-LN transformer run, and
    the output at index 0 (the first sequence element, not the token) read out; then the 1x1
    conv d -> C (no LayerNorm before it) and tanh.

    Position along the pooled axis is a learned embedding, so `length` is fixed at build time.
    """

    def __init__(self, cfg: AEConfig, length: int):
        super().__init__()
        d = cfg.dim
        self.token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, length + 1, d) * 0.02)
        self.layers = nn.ModuleList(
            ProjectionLayer(d, cfg.proj_heads, cfg.proj_head_dim, cfg.proj_mlp_dim)
            for _ in range(cfg.proj_depth)
        )
        self.to_latent = nn.Linear(d, cfg.latent_channels)  # the 1x1 conv d -> C, per token
        # recompute each layer in backward: at 256 px the three projections' activations are
        # most of what the checkpointed video transformers leave in memory
        self.grad_checkpoint = False

    def forward(self, x: Tensor) -> Tensor:  # (N, L, d)
        x = torch.cat([x, self.token.expand(x.shape[0], -1, -1)], dim=1) + self.pos  # (N, L+1, d)
        for i, layer in enumerate(self.layers):
            x = run_layer(layer, self.grad_checkpoint, x, first_only=i == len(self.layers) - 1)
        return torch.tanh(self.to_latent(x[:, 0]))  # (N, C)


# --- the autoencoder -----------------------------------------------------------------------


class ProjectedAutoencoder(nn.Module):
    def __init__(
        self, cfg: AEConfig, frames: int, resolution: int | tuple[int, int], grad_checkpoint: bool = False
    ):
        super().__init__()
        height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
        p, d = cfg.patch_size, cfg.dim
        if height % p or width % p:
            raise BadInputError(f"resolution {height}x{width} is not divisible by the patch size {p}")
        if cfg.proj_depth < 1:
            raise BadInputError(f"ae.proj_depth must be at least 1, got {cfg.proj_depth}")
        if cfg.head_dim % 4:
            raise BadInputError(f"ae.head_dim must be a multiple of 4 for 2D rotary embeddings, got {cfg.head_dim}")
        self.cfg, self.frames, self.height, self.width = cfg, frames, height, width
        self.h, self.w = height // p, width // p

        # encoder
        self.patch_embed = nn.Linear(3 * p * p, d)  # equals a per-frame p x p, stride p conv
        self.encoder = VideoTransformer(d, cfg.depth, cfg.heads, cfg.head_dim, cfg.ff_mult)
        self.proj_s = AxisProjection(cfg, frames)  # pools time   -> (h, w)
        self.proj_h = AxisProjection(cfg, self.h)  # pools height -> (T, w)
        self.proj_w = AxisProjection(cfg, self.w)  # pools width  -> (T, h)

        # decoder; Linear on the channel axis = the spec's 1x1 conv C -> d
        self.from_s = nn.Linear(cfg.latent_channels, d)
        self.from_h = nn.Linear(cfg.latent_channels, d)
        self.from_w = nn.Linear(cfg.latent_channels, d)
        self.decoder = VideoTransformer(d, cfg.depth, cfg.heads, cfg.head_dim, cfg.ff_mult)
        self.to_pixels = nn.ConvTranspose2d(d, 3, kernel_size=p, stride=p)

        self.apply(_init_linear)
        self.set_grad_checkpoint(grad_checkpoint)

    def set_grad_checkpoint(self, on: bool) -> None:
        """Gradient checkpointing of the video transformers and the axis projections."""
        for part in (self.encoder, self.decoder, self.proj_s, self.proj_h, self.proj_w):
            part.grad_checkpoint = on

    def latent_shapes(self) -> dict[str, tuple[int, int, int]]:
        c, t = self.cfg.latent_channels, self.frames
        return {"z_s": (c, self.h, self.w), "z_h": (c, t, self.w), "z_w": (c, t, self.h)}

    def _check_video(self, x: Tensor) -> None:
        if x.ndim != 5:
            raise BadInputError(f"expected a video batch (B, 3, T, H, W), got shape {tuple(x.shape)}")
        _, c, t, h, w = x.shape
        if c != 3:
            raise BadInputError(f"expected 3 channels, got {c} (shape {tuple(x.shape)})")
        if t != self.frames:
            raise BadInputError(f"expected {self.frames} frames, got {t}")
        if (h, w) != (self.height, self.width):
            raise BadInputError(f"expected {self.height}x{self.width} frames (HxW), got {h}x{w}")

    def encode(self, x: Tensor) -> Latents:
        self._check_video(x)
        b, p = x.shape[0], self.cfg.patch_size
        x = rearrange(x, "b c t (h p1) (w p2) -> b t h w (p1 p2 c)", p1=p, p2=p)
        x = self.encoder(self.patch_embed(x))  # (B, T, h, w, d)
        t, h, w = self.frames, self.h, self.w
        z_s = self.proj_s(rearrange(x, "b t h w d -> (b h w) t d"))  # (B*h*w, C)
        z_h = self.proj_h(rearrange(x, "b t h w d -> (b t w) h d"))  # (B*T*w, C)
        z_w = self.proj_w(rearrange(x, "b t h w d -> (b t h) w d"))  # (B*T*h, C)
        return Latents(
            rearrange(z_s, "(b h w) c -> b c h w", b=b, h=h, w=w),
            rearrange(z_h, "(b t w) c -> b c t w", b=b, t=t, w=w),
            rearrange(z_w, "(b t h) c -> b c t h", b=b, t=t, h=h),
        )

    def decode(self, z: Latents) -> Tensor:
        shapes = self.latent_shapes()
        for name, plane in zip(Latents._fields, z):
            if plane.ndim != 4 or tuple(plane.shape[1:]) != shapes[name] or plane.shape[0] != z.batch_size:
                raise BadInputError(
                    f"latent {name} must be (B, {', '.join(map(str, shapes[name]))}) with one B for "
                    f"all planes, got {tuple(plane.shape)}"
                )
        # each plane back to width d, broadcast along the axis it pooled away, summed
        s = self.from_s(rearrange(z.z_s, "b c h w -> b h w c"))[:, None]  # (B, 1, h, w, d)
        zh = self.from_h(rearrange(z.z_h, "b c t w -> b t w c"))[:, :, None]  # (B, T, 1, w, d)
        zw = self.from_w(rearrange(z.z_w, "b c t h -> b t h c"))[:, :, :, None]  # (B, T, h, 1, d)
        x = self.decoder(s + zh + zw)  # (B, T, h, w, d)
        frames = self.to_pixels(rearrange(x, "b t h w d -> (b t) d h w"))  # (B*T, 3, H, W)
        x = rearrange(frames, "(b t) c hh ww -> b c t hh ww", b=z.batch_size)
        return 2 * torch.sigmoid(x) - 1

    def forward(self, x: Tensor, latent_noise: Latents | None = None) -> tuple[Tensor, Latents]:
        """(reconstruction, latents); `latent_noise` is added to the latents before decoding."""
        z = self.encode(x)
        noisy = z if latent_noise is None else Latents(*(p + n for p, n in zip(z, latent_noise)))
        return self.decode(noisy), z


def _init_linear(m: nn.Module) -> None:
    # small-normal init as in GPT-2/nanoGPT; PyTorch's default is scaled for ReLU nets
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)

