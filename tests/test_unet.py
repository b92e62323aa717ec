"""TriplaneUNet: shapes, conditioning, plane handling, parameter counts of the reference sizes."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest
import torch
from torch import nn

from pvdm_core.artifacts.load import count_parameters, joint_attention_parameters
from pvdm_core.base.config import UNetConfig, load_config
from pvdm_core.base.errors import BadInputError
from pvdm_core.models.unet import TriplaneUNet


pytestmark = pytest.mark.usefixtures("one_thread")

TINY = UNetConfig(base_channels=32, channel_mult=[1, 2], num_res_blocks=1, attn_levels=[0, 1], heads=4)
TINY_PRESET = dataclasses.replace(TINY, heads=1, plane_embedding=True)


class Planes(NamedTuple):
    z_s: torch.Tensor
    z_h: torch.Tensor
    z_w: torch.Tensor


def planes(batch=2, c=4, h=8, w=8, t=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Planes(
        torch.randn(batch, c, h, w, generator=g),
        torch.randn(batch, c, t, w, generator=g),
        torch.randn(batch, c, t, h, generator=g),
    )


def make_unet(cfg=TINY, seed=0):
    """A tiny UNet whose zero-initialised output layers are randomised, so outputs are non-trivial."""
    torch.manual_seed(seed)
    m = TriplaneUNet(cfg)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1 and not p.any():
                nn.init.normal_(p, std=0.05)
    return m.eval()


def test_tiny_preset_is_the_test_config():
    assert load_config("tiny").unet == TINY_PRESET


def test_output_shapes_with_and_without_cond():
    m = make_unet()
    x, cond = planes(seed=0), planes(seed=1)
    t = torch.tensor([0, 999])
    with torch.no_grad():
        out_u = m(x, t)
        out_c = m(x, t, cond)
    for out in (out_u, out_c):
        assert isinstance(out, Planes)  # the caller's NamedTuple comes back
        assert [o.shape for o in out] == [p.shape for p in x]
        assert all(torch.isfinite(o).all() for o in out)
    assert isinstance(m(tuple(x), t), tuple)
    # conditioning reaches every plane's output
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(out_u, out_c))


def test_fresh_unet_predicts_zero():
    out = TriplaneUNet(TINY)(planes(), torch.tensor([5, 500]))
    assert all(not o.any() for o in out)  # zero-initialised output conv (ADM)


def test_cond_none_equals_zeros():
    m = make_unet()
    x, t = planes(), torch.tensor([3, 700])
    zeros = Planes(*(torch.zeros_like(p) for p in x))
    with torch.no_grad():
        a, b = m(x, t, None), m(x, t, zeros)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_motion_planes_swap_equivariance():
    """Shared per-plane weights + order-free joint attention: swapping z_h and z_w swaps outputs."""
    m = make_unet()
    x, t = planes(), torch.tensor([10, 400])
    with torch.no_grad():
        a = m(x, t)
        b = m(Planes(x.z_s, x.z_w, x.z_h), t)
    torch.testing.assert_close(a.z_h, b.z_w, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.z_w, b.z_h, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.z_s, b.z_s, rtol=1e-4, atol=1e-5)


def test_plane_embedding_tells_the_planes_apart():
    """With a per-plane embedding the swap symmetry above is broken: z_h and z_w are different
    inputs to the shared blocks; it adds 3 x (4 x base) parameters and learns."""
    m = make_unet(dataclasses.replace(TINY, plane_embedding=True))
    assert count_parameters(m) - count_parameters(make_unet()) == 3 * 4 * TINY.base_channels
    x, t = planes(), torch.tensor([10, 400])
    with torch.no_grad():
        a = m(x, t)
        b = m(Planes(x.z_s, x.z_w, x.z_h), t)
    assert (a.z_h - b.z_w).abs().max() > 1e-3
    sum(o.square().mean() for o in m.train()(x, t)).backward()
    assert m.plane_embed.weight.grad.abs().sum(1).gt(0).all()  # every plane's vector gets a gradient


@pytest.mark.parametrize("h,w,t", [(8, 8, 16), (8, 16, 16), (8, 8, 8), (4, 12, 6)])
def test_plane_shape_groupings(h, w, t):
    """All planes different, two alike (batched), or all three alike (one batch)."""
    m = make_unet()
    x = planes(h=h, w=w, t=t)
    with torch.no_grad():
        out = m(x, torch.tensor([1, 2]))
    assert [o.shape for o in out] == [p.shape for p in x]


def test_batch_independence():
    m = make_unet()
    x, t = planes(batch=3), torch.tensor([1, 500, 999])
    with torch.no_grad():
        full = m(x, t)
        one = m(Planes(*(p[1:2] for p in x)), t[1:2])
    for a, b in zip(full, one):
        torch.testing.assert_close(a[1:2], b, rtol=1e-4, atol=1e-5)


def test_bad_inputs_raise():
    m = make_unet()
    t = torch.tensor([1, 2])
    with pytest.raises(BadInputError, match="divisible"):
        m(planes(h=7), t)
    with pytest.raises(BadInputError):
        m(planes(c=3), t)
    with pytest.raises(BadInputError):
        m(planes(), t, planes(t=8))
    with pytest.raises(BadInputError):
        m(planes(), torch.tensor([1]))
    with pytest.raises(BadInputError):
        m(tuple(planes())[:2], t)
    with pytest.raises(BadInputError, match="attn_levels"):
        TriplaneUNet(dataclasses.replace(TINY, attn_levels=[2]))
    with pytest.raises(BadInputError, match="divisible"):
        TriplaneUNet(dataclasses.replace(TINY, base_channels=48))


def test_three_levels_need_divisibility_by_four():
    cfg = dataclasses.replace(TINY, channel_mult=[1, 1, 2])
    m = TriplaneUNet(cfg)
    with pytest.raises(BadInputError, match="divisible by 4"):
        m(planes(h=6, w=8), torch.tensor([1, 2]))
    assert [o.shape[2:] for o in m(planes(h=4, w=8, t=12), torch.tensor([1, 2]))] == [(4, 8), (12, 8), (12, 4)]


def test_grad_checkpoint_matches():
    x, cond, t = planes(), planes(seed=3), torch.tensor([7, 300])
    grads = []
    for ckpt in (False, True):
        m = make_unet(dataclasses.replace(TINY, grad_checkpoint=ckpt))
        out = m(x, t, cond)
        loss = sum((o**2).mean() for o in out)
        loss.backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_dropout_is_used_in_training_only():
    m = make_unet(dataclasses.replace(TINY, dropout=0.5))
    x, t = planes(), torch.tensor([1, 2])
    with torch.no_grad():
        e1, e2 = m(x, t), m(x, t)
        m.train()
        d1, d2 = m(x, t), m(x, t)
    assert torch.equal(e1.z_s, e2.z_s) and not torch.equal(d1.z_s, d2.z_s)


@pytest.mark.parametrize(
    "base,total,joint", [(256, 528_273_412, 58.3e6), (128, 132_163_588, 14.6e6)]
)
def test_parameter_counts_match_reference(base, total, joint):
    cfg = dataclasses.replace(load_config("ucf256").unet, base_channels=base)
    with torch.device("meta"):
        m = TriplaneUNet(cfg, latent_channels=4)
    assert abs(count_parameters(m) / total - 1) < 0.03
    assert abs(joint_attention_parameters(m) / joint - 1) < 0.03


def _forward_and_grads(m, x, cond, t):
    m.zero_grad()
    out = m(x, t, cond)
    sum((o**2).mean() for o in out).backward()
    return [o.detach() for o in out], [p.grad.clone() for p in m.parameters()]


def test_plane_gemm_equals_per_group_convolution(monkeypatch):
    """The im2col GEMM over all planes (small planes, CPU) gives oneDNN's per-group convolution's
    outputs and gradients to float32 round-off; PVDM_PLANE_GEMM=0 is exactly nn.Conv2d."""
    from pvdm_core.models import unet as unet_mod

    m, x, cond, t = make_unet().train(), planes(), planes(seed=3), torch.tensor([7, 300])
    pixels = sum(p.shape[2] * p.shape[3] for p in x)
    assert pixels > unet_mod.PLANE_GEMM_MAX_PIXELS >= pixels // 4  # level 0 per group, level 1 one GEMM
    monkeypatch.setenv("PVDM_PLANE_GEMM", "0")
    ref_out, ref_grads = _forward_and_grads(m, x, cond, t)
    monkeypatch.setenv("PVDM_PLANE_GEMM", "1")
    out, grads = _forward_and_grads(m, x, cond, t)
    def rel_err(a, b):  # the largest difference relative to the tensor's scale
        return float((a - b).abs().max() / b.abs().max())

    assert max(rel_err(a, b) for a, b in zip(out, ref_out)) < 1e-5
    assert any(not torch.equal(a, b) for a, b in zip(out, ref_out))  # a different kernel really ran
    scale = max(float(g.abs().max()) for g in ref_grads)  # biases before a GroupNorm get only round-off
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * scale)


def test_conv_groups_falls_back_above_the_threshold():
    from pvdm_core.models.unet import PLANE_GEMM_MAX_PIXELS, conv_groups

    conv = nn.Conv2d(8, 16, 3, padding=1)
    side = int(PLANE_GEMM_MAX_PIXELS**0.5) + 1  # one plane alone is over the threshold
    groups = [torch.randn(2, 8, side, side), torch.randn(4, 8, side, 4)]
    with torch.no_grad():
        for got, g in zip(conv_groups(conv, groups), groups):
            assert torch.equal(got, conv(g))
        small = [torch.randn(2, 8, 4, 4), torch.randn(4, 8, 2, 4), torch.randn(1, 8, 1, 1)]
        for got, g in zip(conv_groups(conv, small), small):
            torch.testing.assert_close(got, conv(g), rtol=1e-5, atol=1e-6)
            assert got.is_contiguous()

