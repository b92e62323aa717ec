"""sample.noise=release draws on the generator the release draws on: its CUDA device's on CUDA."""

import pytest
import torch

from pvdm_core.diffusion.planes import FlatNoise
from pvdm_core.generate.sample import noise_source


class _FakeGenerator:
    """Stands in for torch.Generator on a machine without CUDA: records its device and seed."""

    def __init__(self, device="cpu"):
        self.device = torch.device(device)

    def manual_seed(self, seed):
        self.seed = seed
        return self


def test_release_noise_uses_the_cuda_generator_on_cuda(monkeypatch):
    monkeypatch.setattr(torch, "Generator", _FakeGenerator)
    noise = noise_source([7, 8], "release", torch.device("cuda", 1))
    assert isinstance(noise, FlatNoise) and noise.generator.device == torch.device("cuda", 1)
    assert noise.generator.seed == 7
    assert noise_source([7], "release", torch.device("cpu")).generator.device.type == "cpu"
    assert noise_source([7], "release", torch.device("mps")).generator.device.type == "cpu"
    per_video = noise_source([7, 8], "per-video", torch.device("cuda"))  # device-independent samples
    assert [g.device.type for g in per_video] == ["cpu", "cpu"] and [g.seed for g in per_video] == [7, 8]


@pytest.mark.gpu
def test_release_noise_on_cuda_is_the_stream_of_torch_manual_seed():
    """The release seeds with torch.manual_seed and draws torch.randn(..., device='cuda')."""
    x = (torch.zeros(2, 4, 8, 8, device="cuda"),)
    drawn = noise_source([3], "release", torch.device("cuda")).like(x)[0]
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.randn(2, 4, 64, device="cuda").reshape(2, 4, 8, 8))
