"""Class-conditional generation and classifier-free guidance: labels of the data, the label
embedding (and an unconditional UNet left exactly as it was), guided sampling, the CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import SMALL
from pvdm_core.base.errors import BadInputError
from pvdm_core.data.labels import UCF101_CLASSES, label_indices, sort_classes
from pvdm_core.data.synthetic import SHAPES, _render, contrasting, synthetic_main_shape, synthetic_video
from pvdm_core.diffusion.process import draw_label_drop
from pvdm_core.generate.sample import guided
from pvdm_core.io.checkpoint import load_checkpoint
from pvdm_core.io.video_io import read_video
from pvdm_core.models.autoencoder import Latents
from test_unet import TINY_PRESET, make_unet, planes

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["--set", "unet.num_classes=3", "--set", "data.class_labels=true"]
# 100 diffusion steps keep full DDPM sampling (every timestep) quick in these tests
DM = ["--batch-size", 4, "--set", "unet.base_channels=32", "--set", "diffusion_train.sample_every=1000",
      "--set", "diffusion.timesteps=100", "--set", "sample.steps=2"]


# -- labels of the data ---------------------------------------------------------------------------

def test_default_synthetic_set_unchanged():
    # sums of the videos the code before class labels drew (2026-12-02): other work depends on them
    for seed, total, absolute in ((7, 1797.5382701600902, 20659.989866376156),
                                  (1000003, 13211.70107004992, 19953.6073084251)):
        v = synthetic_video(seed, 16, 32).double()
        assert v.sum().item() == pytest.approx(total, rel=1e-9)
        assert v.abs().sum().item() == pytest.approx(absolute, rel=1e-9)


def test_synthetic_label_is_the_one_shape(monkeypatch):
    import pvdm_core.data.synthetic as synthetic

    counts = dict.fromkeys(SHAPES, 0)
    for seed in range(40):
        video, kinds = _render(seed, 6, 16, single_shape=False)
        assert synthetic_main_shape(seed) == kinds[0]  # a pure function of the seed, the video's first shape
        counts[kinds[0]] += 1
        # the same draws as the default video: without the class set's legibility changes it is
        # that video minus its second shape
        with monkeypatch.context() as m:
            m.setattr(synthetic, "SINGLE_SHAPE_SCALE", 1.0)
            m.setattr(synthetic, "SINGLE_TRIANGLE_SCALE", 1.0)
            m.setattr(synthetic, "SINGLE_SHAPE_CONTRAST", 0.0)
            m.setattr(synthetic, "SINGLE_SHAPE_SLOWDOWN", (1.0, 1.0))
            m.setattr(synthetic, "SINGLE_SHAPE_ROCKING", None)
            assert torch.equal(synthetic_video(seed, 6, 16, single_shape=True), video) == (len(kinds) == 1)
    assert min(counts.values()) >= 8  # each kind about a third


def test_class_set_shapes_contrast_with_their_background(monkeypatch):
    import pvdm_core.data.synthetic as synthetic

    background = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    # own side when that stays in [0, 1] (0.2 -> 0.35, 0.45 -> 0.25), else the other (0.95 -> 0.65)
    assert contrasting(torch.tensor([0.2, 0.45, 0.95]).double(), background, 0.25).tolist() == pytest.approx([0.35, 0.25, 0.65])
    far = torch.tensor([0.6, 0.0, 0.3], dtype=torch.float64)  # every channel already 0.5+ away: kept
    assert torch.equal(contrasting(far, background, 0.25), far)
    assert torch.equal(contrasting(background + 0.01, background, 0.0), background + 0.01)
    # rendered: where the shape covers a pixel fully, its colour is that far from the mean of the
    # same video rendered without its shape (every mask zeroed)
    real_mask, masks = synthetic._shape_mask, []
    for seed in range(12):
        monkeypatch.setattr(synthetic, "_shape_mask", lambda *a: masks.append(real_mask(*a)) or masks[-1])
        video = (synthetic_video(seed, 4, 32, single_shape=True) + 1) / 2  # (3, T, H, W), 0-1
        monkeypatch.setattr(synthetic, "_shape_mask", lambda *a: torch.zeros_like(real_mask(*a)))
        background = (synthetic_video(seed, 4, 32, single_shape=True) + 1) / 2
        covered = masks[-1] == 1  # (T, H, W)
        assert covered.sum() > 30
        shape_colors = video[:, covered]  # (3, N), all the shape's one colour
        assert (shape_colors - shape_colors[:, :1]).abs().max() < 1e-6
        gap = shape_colors[:, 0].double() - background.double().mean((1, 2, 3))
        assert (gap.abs() >= synthetic.SINGLE_SHAPE_CONTRAST - 1e-6).all(), (seed, gap)
    assert synthetic.SINGLE_SHAPE_CONTRAST == 0.5


def test_class_set_shapes_rock_about_an_upright_pose(monkeypatch):
    import pvdm_core.data.synthetic as synthetic

    real_mask, angles = synthetic._shape_mask, {}
    monkeypatch.setattr(synthetic, "_shape_mask", lambda kind, dx, dy, r, angle: angles.update({kind: angle.flatten()})
                        or real_mask(kind, dx, dy, r, angle))
    swings = []
    for seed in range(30):
        angles.clear()
        synthetic_video(seed, 128, 8, single_shape=True)  # a long video: spinning would drift far
        (kind, angle), = angles.items()
        off = angle - synthetic.UPRIGHT_ANGLE[kind]
        assert off.abs().max() <= 0.25 + 1e-9, (seed, kind)  # never more than 14 degrees off upright
        swings.append(float(off.max() - off.min()))
    assert min(swings) > 0.1  # and every shape turns, back and forth


def test_ucf101_class_list():
    assert len(UCF101_CLASSES) == 101 == len(set(UCF101_CLASSES))
    assert list(UCF101_CLASSES) == sort_classes(UCF101_CLASSES)  # classInd order: case-insensitive
    assert UCF101_CLASSES.index("Hammering") == 34 and UCF101_CLASSES.index("HammerThrow") == 35
    # a UCF-101 layout gets the official index map even when only some classes are present
    labels, names = label_indices(["ucf/YoYo/v_YoYo_g01_c01.avi", "ucf/Archery/v_Archery_g02_c03.avi"])
    assert labels == [100, 2] and names == list(UCF101_CLASSES)
    assert label_indices(["d/b/x.mp4", "d/a/y.mp4", "d/b/z.mp4"]) == ([1, 0, 1], ["a", "b"])
    assert label_indices(["synthetic/00000017"]) == ([SHAPES.index(synthetic_main_shape(17))], list(SHAPES))
    with pytest.raises(BadInputError, match="not one of the classes a, b"):
        label_indices(["d/c/x.mp4"], ["a", "b"])


# -- the model ------------------------------------------------------------------------------------

def test_unconditional_unet_unchanged():
    # golden numbers of the UNet before the label embedding existed (same seed, same inputs)
    m = make_unet(TINY_PRESET, seed=0)
    assert len(m.state_dict()) == 211 and not any("label" in k for k in m.state_dict())
    assert sum(p.double().sum().item() for p in m.parameters()) == pytest.approx(2027.3292608142453, rel=1e-9)
    x, cond, t = planes(seed=0), planes(seed=1), torch.tensor([3, 700])
    with torch.no_grad():
        for c, golden in ((None, (172.365301, 372.545202, 365.190593)), (cond, (169.121149, 360.417401, 372.970666))):
            out = m(x, t, c)
            assert [o.double().abs().sum().item() for o in out] == pytest.approx(golden, rel=1e-5)
            assert all(torch.equal(a, b) for a, b in zip(out, m(x, t, c, None)))
        with pytest.raises(BadInputError, match="no class labels"):
            m(x, t, None, torch.tensor([0, 1]))


def test_label_embedding_and_null_label():
    m = make_unet(dataclasses.replace(TINY_PRESET, num_classes=3), seed=0)
    base = make_unet(TINY_PRESET, seed=0).state_dict()
    assert set(m.state_dict()) - set(base) == {"label_embed.weight"}
    assert m.label_embed.weight.shape == (4, 4 * 32)  # 3 classes + the null label
    x, t = planes(seed=0), torch.tensor([10, 500])
    with torch.no_grad():
        null = m(x, t)
        assert all(torch.equal(a, b) for a, b in zip(null, m(x, t, None, torch.tensor([-1, -1]))))
        y0, y2 = m(x, t, None, torch.tensor([0, 0])), m(x, t, None, torch.tensor([2, 2]))
        assert not torch.allclose(y0[0], y2[0]) and not torch.allclose(y0[0], null[0])
        with pytest.raises(BadInputError, match="labels must be"):
            m(x, t, None, torch.tensor([3, 0]))


def _as_latents(p) -> Latents:
    return Latents(*p)


def test_guidance_zero_is_the_plain_forward():
    m = make_unet(dataclasses.replace(TINY_PRESET, num_classes=3), seed=0)
    x, cond, t, y = _as_latents(planes(seed=0)), _as_latents(planes(seed=1)), torch.tensor([10, 500]), torch.tensor([1, 2])
    with torch.no_grad():
        for c in (None, cond):
            assert all(torch.equal(a, b) for a, b in zip(guided(m, x, t, c, y, 0.0, 0.0), m(x, t, c, y)))


def test_batched_guidance_equals_separate_forwards():
    m = make_unet(dataclasses.replace(TINY_PRESET, num_classes=3), seed=0)
    x, cond, t, y = _as_latents(planes(seed=0)), _as_latents(planes(seed=1)), torch.tensor([10, 500]), torch.tensor([1, 2])
    calls = []
    counted = lambda *args: calls.append(args[0].batch_size) or m(*args)  # noqa: E731
    with torch.no_grad():
        f, u_label, u_cond = m(x, t, cond, y), m(x, t, cond, torch.tensor([-1, -1])), m(x, t, None, y)
        out = guided(counted, x, t, cond, y, 2.0, 1.5)
        assert calls == [6]  # three branches of batch 2, one forward
        for o, a, b, c in zip(out, f, u_label, u_cond):
            torch.testing.assert_close(o, a + 2.0 * (a - b) + 1.5 * (a - c), atol=1e-4, rtol=1e-4)  # batched float32 round-off, times 1 + sum(w)
        # the release's previous-clip guidance alone: (1 + w) eps(z | prev) - w eps(z | 0)
        for o, a, c in zip(guided(m, x, t, cond, y, 0.0, 3.0), f, u_cond):
            torch.testing.assert_close(o, 4.0 * a - 3.0 * c, atol=1e-4, rtol=1e-4)  # batched float32 round-off, times 1 + sum(w)
        # clip 1 has no previous clip: no condition branch, and no label branch without a label
        calls.clear()
        guided(counted, x, t, None, None, 2.0, 1.5)
        assert calls == [2]


def test_label_dropout_rate():
    g = torch.Generator().manual_seed(0)
    assert abs(draw_label_drop(20000, 0.1, g).float().mean().item() - 0.1) < 0.01
    assert not draw_label_drop(1000, 0.0, g).any()


# -- the commands ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ae_run(cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    cli("train-ae", "--out", out, "--steps", 2, "--batch-size", 4, *SMALL)
    return out


@pytest.fixture(scope="module")
def class_run(cli, tmp_path_factory, ae_run):
    out = tmp_path_factory.mktemp("dm")
    res = cli.json("train-diffusion", "--ae", ae_run, "--out", out, "--steps", 3, *DM, *CLASSES)
    assert res["class_names"] == list(SHAPES)
    return out


def test_class_conditional_checkpoint_and_sampling(cli, class_run, tmp_path):
    state = load_checkpoint(class_run)
    assert state["class_names"] == list(SHAPES) and state["config"]["diffusion"]["label_dropout"] == 0.1
    r = cli.json("sample", "--model", class_run, "--class", "triangle", "--guidance", 2, "--cond-guidance", 1,
                 "--frames", 16, "-o", tmp_path / "one.mp4")
    assert r["classes"] == ["triangle"] and r["guidance"] == 2.0 and r["cond_guidance"] == 1.0
    assert read_video(r["videos"][0]).shape == (16, 16, 16, 3)  # two clips of 8
    r = cli.json("sample", "--model", class_run, "--num", 4, "--class", "disc,2", "--class", "Square",
                 "-o", tmp_path / "many", "--format", "npz")
    assert r["classes"] == ["disc", "triangle", "square", "disc"]  # cycled over the videos
    assert cli.json("sample", "--model", class_run, "-o", tmp_path / "null.npz")["classes"] == [None]
    for sampler in ("ddim", "ddpm", "dpm"):
        cli.json("sample", "--model", class_run, "--sampler", sampler, "--class", "square", "--guidance", 1,
                 "--frames", 16, "--cond-guidance", 2, "-o", tmp_path / f"{sampler}.npz")
    src = tmp_path / "one.mp4"
    r = cli.json("extend", src, "--model", class_run, "--class", "disc", "--guidance", 1, "--cond-guidance", 1,
                 "--frames", 8, "-o", tmp_path / "ext.npz")
    assert r["classes"] == ["disc"] and np.load(r["video"])["video"].shape[0] == 24


def test_class_refusals(cli, class_run, ae_run, tmp_path):
    r = cli("sample", "--model", class_run, "--class", "hexagon", "-o", tmp_path / "x.mp4", code=2)
    assert "unknown class 'hexagon': choose one of disc, square, triangle" in r.stderr
    r = cli("sample", "--model", class_run, "--guidance", 2, "-o", tmp_path / "x.mp4", code=2)
    assert "give one with --class (disc, square, triangle)" in r.stderr
    r = cli("extend", tmp_path / "x.mp4", "--model", class_run, "--class", "disc,square", "-o", tmp_path / "y.mp4", code=2)
    assert "at most 1 --class" in r.stderr
    uncond = tmp_path / "uncond"
    cli("train-diffusion", "--ae", ae_run, "--out", uncond, "--steps", 1, *DM)
    r = cli("sample", "--model", uncond, "--class", "disc", "-o", tmp_path / "x.mp4", code=2)
    assert "not class-conditional" in r.stderr
    r = cli("train-diffusion", "--ae", ae_run, "--out", tmp_path / "a", "--steps", 1, *DM,
            "--set", "data.class_labels=true", code=2)
    assert "the data has 3 classes (disc, square, triangle)" in r.stderr and "unet.num_classes=3" in r.stderr
    r = cli("train-diffusion", "--ae", ae_run, "--out", tmp_path / "b", "--steps", 1, *DM,
            "--set", "unet.num_classes=3", code=2)
    assert "needs class labels: --set data.class_labels=true" in r.stderr


def test_encode_stores_labels_for_training(cli, ae_run, tmp_path):
    vids = cli.json("synth", tmp_path / "vids", "--num", 4, "--frames", 16, "--set", "data.resolution=16",
                    "--set", "data.class_labels=true", "--split", "train")["videos"]
    res = cli.json("encode", "--ae", ae_run, tmp_path / "vids", "-o", tmp_path / "lat.npz", "--class-labels")
    assert res["class_names"] == list(SHAPES)
    with np.load(tmp_path / "lat.npz") as z:
        assert list(z["class_names"]) == list(SHAPES)
        assert [SHAPES[i] for i in z["label"][::2]] == [synthetic_main_shape(i) for i in range(4)]  # 2 clips a video
    res = cli.json("train-diffusion", "--ae", ae_run, "--latents", tmp_path / "lat.npz", "--out", tmp_path / "dm",
                   "--steps", 1, *DM, *CLASSES)
    assert res["class_names"] == list(SHAPES) and res["clips"] == 8 and len(vids) == 4
    cli.json("encode", "--ae", ae_run, tmp_path / "vids", "-o", tmp_path / "plain.npz")
    r = cli("train-diffusion", "--ae", ae_run, "--latents", tmp_path / "plain.npz", "--out", tmp_path / "dm2",
            "--steps", 1, *DM, *CLASSES, code=2)
    assert "hold no class labels: encode them with `pvdm encode --class-labels`" in r.stderr


def test_class_conditional_resume_equals_uninterrupted(cli, ae_run, tmp_path):
    dm = ["--ae", ae_run, *DM, *CLASSES, "--set", "diffusion.label_dropout=0.5"]
    cli("train-diffusion", "--out", tmp_path / "full", "--steps", 4, *dm)
    cli("train-diffusion", "--out", tmp_path / "part", "--steps", 2, *dm)
    cli("train-diffusion", "--out", tmp_path / "part", "--steps", 4, *dm)
    a, b = load_checkpoint(tmp_path / "full")["model"], load_checkpoint(tmp_path / "part")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def _centroid_steps(monkeypatch, seed: int, single_shape: bool) -> torch.Tensor:
    """Per-frame movement (px) of the centroid of video `seed`'s first shape, 16 frames at 32 px."""
    import pvdm_core.data.synthetic as synthetic

    real_mask, masks = synthetic._shape_mask, []
    monkeypatch.setattr(synthetic, "_shape_mask", lambda *a: masks.append(real_mask(*a)) or masks[-1])
    synthetic_video(seed, 16, 32, single_shape=single_shape)
    mask = masks[0][..., 0] if masks[0].ndim == 4 else masks[0]  # (T, H, W)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    area = mask.sum((1, 2))
    centre = torch.stack([(mask * xs).sum((1, 2)) / area, (mask * ys).sum((1, 2)) / area], 1)  # (T, 2)
    return (centre[1:] - centre[:-1]).norm(dim=1)


def test_class_set_shapes_move_slowly_enough_to_pool(monkeypatch):
    # PVDM's content plane pools over the clip: the class set's shape moves at most 0.3 x 1.6 px a
    # frame along each axis (0.68 diagonally; bounces aside), the default set's up to 1.6 (2.3)
    slow = max(float(_centroid_steps(monkeypatch, s, True).median()) for s in range(24))
    fast = max(float(_centroid_steps(monkeypatch, s, False).median()) for s in range(24))
    assert slow <= 0.7 < 1.2 < fast, (slow, fast)
