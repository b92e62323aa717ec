"""ProjectedAutoencoder: latent shapes, round trip, input checks, reference size, overfitting."""

import dataclasses

import pytest
import torch

from pvdm_core.artifacts.load import count_parameters
from pvdm_core.base.config import AEConfig, load_config
from pvdm_core.base.errors import BadInputError
from pvdm_core.models.autoencoder import (
    AxisProjection,
    Latents,
    ProjectedAutoencoder,
    apply_rope,
    rope_space,
    rope_time,
)
from pvdm_core.models.discriminator import PatchDiscriminator2D, PatchDiscriminator3D

# a very small model so every test runs in well under a second
SMALL = AEConfig(patch_size=4, dim=32, depth=1, heads=2, head_dim=16, proj_depth=1, proj_heads=2,
                 proj_head_dim=16, proj_mlp_dim=32, latent_channels=4)
REFERENCE_PARAMS = 62_064_399  # the public release, measured (spec §5)


def video(b, t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize(
    "frames, res, patch",
    [(16, 32, 4), (8, 16, 4), (5, (16, 24), 4), (4, (24, 16), 8), (3, 8, 2), (1, 16, 8)],
)
def test_latent_shapes_and_round_trip(frames, res, patch):
    cfg = dataclasses.replace(SMALL, patch_size=patch)
    ae = ProjectedAutoencoder(cfg, frames, res)
    H, W = (res, res) if isinstance(res, int) else res
    h, w = H // patch, W // patch
    assert ae.latent_shapes() == {"z_s": (4, h, w), "z_h": (4, frames, w), "z_w": (4, frames, h)}
    x = video(2, frames, H, W)
    z = ae.encode(x)
    assert isinstance(z, Latents)
    for name, plane in zip(Latents._fields, z):
        assert plane.shape == (2, *ae.latent_shapes()[name])
        assert plane.abs().max() <= 1  # tanh
    out = ae.decode(z)
    assert out.shape == x.shape
    assert out.min() >= -1 and out.max() <= 1
    recon, z2 = ae(x)
    assert torch.allclose(recon, out) and torch.allclose(z2.z_s, z.z_s)


def test_latents_helpers():
    ae = ProjectedAutoencoder(SMALL, 4, 16)
    z = ae.encode(video(3, 4, 16, 16))
    assert z.batch_size == 3
    assert z.take(1).z_h.shape == (1, 4, 4, 4)
    assert z.take(slice(0, 2)).batch_size == 2
    both = Latents.cat([z, z.take(0)])
    assert both.batch_size == 4 and torch.equal(both.z_w[3], z.z_w[0])
    assert z.to(torch.bfloat16).float().z_s.dtype == torch.float32
    assert not z.detach().z_s.requires_grad


def test_bad_inputs_raise():
    ae = ProjectedAutoencoder(SMALL, 16, 32)
    with pytest.raises(BadInputError, match="expected 16 frames, got 8"):
        ae.encode(video(1, 8, 32, 32))
    with pytest.raises(BadInputError, match="expected 3 channels, got 1"):
        ae.encode(torch.zeros(1, 1, 16, 32, 32))
    with pytest.raises(BadInputError, match="32x32"):
        ae.encode(video(1, 16, 32, 16))
    with pytest.raises(BadInputError, match="B, 3, T, H, W"):
        ae.encode(torch.zeros(3, 16, 32, 32))
    z = ae.encode(video(2, 16, 32, 32))
    with pytest.raises(BadInputError, match="z_h"):
        ae.decode(Latents(z.z_s, z.z_h[:, :, :8], z.z_w))
    with pytest.raises(BadInputError, match="one B"):
        ae.decode(Latents(z.z_s, z.z_h[:1], z.z_w))
    with pytest.raises(BadInputError, match="divisible by the patch size"):
        ProjectedAutoencoder(SMALL, 16, 30)
    with pytest.raises(BadInputError, match="proj_depth"):
        ProjectedAutoencoder(dataclasses.replace(SMALL, proj_depth=0), 16, 32)


def test_reference_parameter_count():
    cfg = load_config("sky256").ae
    with torch.device("meta"):
        ae = ProjectedAutoencoder(cfg, 16, 256)
    total = count_parameters(ae)
    encoder = count_parameters(ae.patch_embed) + count_parameters(ae.encoder)
    projections = sum(count_parameters(m) for m in (ae.proj_s, ae.proj_h, ae.proj_w))
    decoder = total - encoder - projections
    print(f"AE {total:,}: encoder {encoder:,}, projections {projections:,}, decoder {decoder:,}")
    assert total == REFERENCE_PARAMS  # exactly the release's ViTAutoencoder
    assert abs(encoder - 26.9e6) < 0.3e6 and abs(decoder - 26.8e6) < 0.3e6 and abs(projections - 8.3e6) < 0.2e6


@pytest.mark.slow
def test_overfits_a_fixed_batch():
    torch.manual_seed(0)
    ae = ProjectedAutoencoder(SMALL, 4, 16)
    # a smooth clip (a blob moving right) that a small model can learn quickly
    t, y, x = torch.meshgrid(torch.arange(4.0), torch.arange(16.0), torch.arange(16.0), indexing="ij")
    blob = torch.exp(-((x - 4 - 2 * t) ** 2 + (y - 8) ** 2) / 8)
    clip = torch.stack([blob, 1 - blob, 0.5 * blob]) * 1.6 - 0.8  # (3, T, H, W)
    batch = torch.stack([clip, clip.flip(-1)])
    opt = torch.optim.AdamW(ae.parameters(), lr=3e-3, betas=(0.5, 0.9))
    losses = []
    for _ in range(25):
        recon, _ = ae(batch)
        loss = (recon - batch).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.4 * losses[0], losses[::10]


def test_rope_tables_equal_the_release():
    """Golden numbers from the release's RotaryEmbedding / AxialRotaryEmbedding + apply_rot_emb
    (vit_modules.py, commit 793172f), computed once on these inputs."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(6, 16, generator=g)
    torch.randn(6, 16, generator=g)  # the release's k, drawn to keep the stream
    space = apply_rope(q, rope_space(3, 2, 16, torch.device("cpu")))
    assert space[4].tolist() == pytest.approx(
        [0.569248, -0.919971, 1.700021, -0.087272, 0.82925, -2.843946, 0.473119, -0.335551,
         1.629326, 0.549744, 0.100784, -0.685394, 1.300348, -0.831043, 0.140672, -0.805753], abs=2e-6)
    q8 = torch.randn(3, 8, generator=g)
    time = apply_rope(q8, rope_time(3, 8, torch.device("cpu")))
    assert time[2].tolist() == pytest.approx(
        [0.58894, -0.683598, 1.692838, 0.349615, -1.722839, 1.614275, -0.039331, -0.628533], abs=2e-6)
    # the time table is the release's concatenated one: pair (0, 1) turns by different angles
    cos, sin = rope_time(3, 8, torch.device("cpu"))
    assert sin[1].tolist() == pytest.approx([0.841471, 0.099833, 0.01, 0.001] * 2, abs=1e-6)


def test_projection_last_layer_shortcut_is_exact():
    cfg = dataclasses.replace(SMALL, proj_depth=2)
    proj = AxisProjection(cfg, length=5)
    x = torch.randn(3, 5, cfg.dim)
    full = torch.cat([x, proj.token.expand(3, -1, -1)], dim=1) + proj.pos  # token last, as the release
    for layer in proj.layers:
        full = layer(full)  # every token through every layer
    expected = torch.tanh(proj.to_latent(full[:, 0]))  # index 0 read out, no LayerNorm
    assert torch.allclose(proj(x), expected, atol=1e-6)


def test_grad_checkpoint_matches_and_covers_the_projections(monkeypatch):
    """Checkpointing recomputes every video-transformer block and every axis-projection layer
    (was: the projections kept their activations), with the same gradients."""
    from pvdm_core.models import autoencoder

    torch.manual_seed(0)
    ae = ProjectedAutoencoder(dataclasses.replace(SMALL, proj_depth=2), 4, 16)
    x = video(2, 4, 16, 16)
    ae(x)[0].mean().backward()
    g0 = {n: p.grad.clone() for n, p in ae.named_parameters()}
    ae.zero_grad()
    ae.set_grad_checkpoint(True)
    recomputed, real = [], autoencoder.checkpoint

    def spy(fn, *args, **kwargs):
        recomputed.append(type(fn).__name__)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(autoencoder, "checkpoint", spy)
    ae(x)[0].mean().backward()
    # 3 projections x 2 layers, encoder and decoder x 1 block
    assert sorted(recomputed) == ["ProjectionLayer"] * 6 + ["VideoBlock"] * 2
    for n, p in ae.named_parameters():
        torch.testing.assert_close(p.grad, g0[n], rtol=1e-5, atol=1e-6, msg=n)


@pytest.mark.parametrize("frames, res", [(16, 32), (4, 16), (16, 64)])
def test_discriminator_shapes(frames, res):
    d2, d3 = PatchDiscriminator2D(16, 3), PatchDiscriminator3D(16, 3)
    x = video(2, frames, res, res)
    logits2, feats2 = d2(x[:, :, 0])
    logits3, feats3 = d3(x)
    assert logits2.shape[:2] == (2, 1) and logits2.ndim == 4 and min(logits2.shape[2:]) >= 1
    assert logits3.shape[:2] == (2, 1) and logits3.ndim == 5 and min(logits3.shape[2:]) >= 1
    assert [f.shape[1] for f in feats2] == [16, 32, 64, 128] == [f.shape[1] for f in feats3]
    assert all(f.shape[0] == 2 for f in feats2 + feats3)


def test_discriminator_width_cap_and_layers():
    d = PatchDiscriminator2D(channels=256, layers=4)
    _, feats = d(torch.zeros(2, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [256, 512, 512, 512, 512]
