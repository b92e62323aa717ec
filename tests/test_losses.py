"""Losses: LPIPS-VGG16 loading (offline, from a test-made file) and the small GAN/L1 losses."""

import dataclasses

import pytest
import torch

from pvdm_core.base.errors import BadInputError, MissingWeightsError
import pvdm_core.training.losses as losses
from pvdm_core.training.losses import (
    VGG16_SPEC,
    LPIPSVGG,
    build_perceptual_loss,
    feature_matching_loss,
    generator_loss,
    hinge_d_loss,
    l1_loss,
    lpips_linear_weights_path,
    vgg16_features,
)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random-init VGG16 saved in torchvision's state-dict layout (features.* keys)."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg16_features().state_dict().items()}
    state["classifier.0.bias"] = torch.zeros(4)  # other keys in the file are ignored
    path = tmp_path_factory.mktemp("weights") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PVDM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PVDM_VGG16_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def lpips(vgg_file):
    return build_perceptual_loss(4.0, vgg_file, check_sha=False)


def images(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_vgg16_layout_matches_torchvision():
    keys = list(vgg16_features().state_dict())
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision's conv indices
    assert keys == [f"{i}.{p}" for i in convs for p in ("weight", "bias")]
    assert sum(p.numel() for p in vgg16_features().parameters()) == 14_714_688


def test_lpips_from_test_file(lpips):
    x, y = images(seed=0), images(seed=1)
    d = lpips(x, y)
    assert d.shape == (2,) and torch.isfinite(d).all() and (d > 0).all()
    assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
    assert not any(p.requires_grad for p in lpips.parameters())
    lpips.train()
    assert not lpips.training  # stays a fixed metric
    # gradients reach the images
    xg = x.clone().requires_grad_(True)
    lpips(xg, y).mean().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    # the shipped LPIPS linear layers were loaded
    lin = torch.load(lpips_linear_weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(lpips.lins[3].weight, lin["lin3.model.1.weight"])


def test_lpips_matches_torchmetrics_implementation(lpips, vgg_file, monkeypatch):
    """Same VGG weights in torchmetrics' own LPIPS (its torchvision hook replaced) give the same
    distances: checks scaling, layer taps, normalisation and linear weights."""
    lpips_tm = pytest.importorskip("torchmetrics.functional.image.lpips")
    state = torch.load(vgg_file, weights_only=True)
    features = vgg16_features()
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
    monkeypatch.setattr(lpips_tm, "_get_tv_model_features", lambda net, pretrained=False: features)
    reference = lpips_tm._LPIPS(pretrained=True, net="vgg", use_dropout=True).eval()
    x, y = images(3, 48, seed=2), images(3, 48, seed=3)
    assert torch.allclose(lpips(x, y), reference(x, y).flatten(), rtol=1e-4, atol=1e-6)


def test_weight_zero_needs_no_file(empty_home):
    assert build_perceptual_loss(0.0) is None


def test_missing_weights_names_the_file(empty_home, tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        build_perceptual_loss(4.0)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        build_perceptual_loss(4.0, tmp_path / "nowhere.pth")
    monkeypatch.setenv("PVDM_VGG16_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(MissingWeightsError, match="PVDM_VGG16_WEIGHTS"):
        build_perceptual_loss(4.0)


def test_env_var_and_sha_check(empty_home, vgg_file, monkeypatch):
    monkeypatch.setenv("PVDM_VGG16_WEIGHTS", str(vgg_file))
    # the test-made file is not torchvision's: refused unless the check is off
    with pytest.raises(BadInputError, match="sha256"):
        build_perceptual_loss(4.0)
    assert isinstance(build_perceptual_loss(4.0, check_sha=False), LPIPSVGG)
    spec = dataclasses.replace(VGG16_SPEC, sha256=None)
    assert isinstance(build_perceptual_loss(4.0, spec=spec), LPIPSVGG)


def test_incomplete_vgg_file_is_refused(tmp_path):
    state = {f"features.{k}": v for k, v in vgg16_features().state_dict().items() if not k.startswith("28.")}
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(BadInputError, match="28.weight"):
        LPIPSVGG(tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match="junk.pth"):
        LPIPSVGG(tmp_path / "junk.pth")


def test_vgg16_sha_is_torchvisions():
    assert VGG16_SPEC.sha256.startswith("397923af") and len(VGG16_SPEC.sha256) == 64
    assert losses.VGG16_SPEC.env_var == "PVDM_VGG16_WEIGHTS"


def test_small_losses():
    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    assert l1_loss(a, b) == 1 and l1_loss(a, a) == 0
    assert hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)) == 0  # confident and right
    assert hinge_d_loss(torch.zeros(4), torch.zeros(4)) == 1
    assert hinge_d_loss(torch.full((4,), -1.0), torch.full((4,), 1.0)) == 2
    assert generator_loss(torch.tensor([1.0, 3.0])) == -2


def test_feature_matching_loss():
    real = [torch.randn(2, 4, 5, 5, requires_grad=True), torch.randn(2, 8, 3, 3, requires_grad=True)]
    fake = [r.detach().clone().requires_grad_(True) for r in real]
    assert feature_matching_loss(real, fake) == 0
    fake2 = [f + 1 for f in fake]
    loss = feature_matching_loss(real, fake2)
    assert torch.isclose(loss, torch.tensor(2.0))  # mean |diff| = 1 for each of the two blocks
    loss.backward()
    assert real[0].grad is None and fake[0].grad is not None  # real features are targets only
