"""Autoencoder losses (spec §1): L1 pixels, LPIPS-VGG16 on a frame, hinge GAN, feature matching.

LPIPS (Zhang et al. 2018): VGG16 activations at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3,
each unit-normalised over channels; squared differences weighted per channel by learned 1x1
convs, averaged over space, summed over layers. The linear weights ship in the torchmetrics
wheel; the ImageNet VGG16 backbone is torchvision's file, resolved offline (never downloaded).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pvdm_core.base.errors import BadInputError, MissingWeightsError
from pvdm_core.io.checkpoint import load_tensors
from pvdm_core.io.weights import WeightsSpec, resolve_weights

VGG16_SPEC = WeightsSpec(
    filename="vgg16-397923af.pth",
    env_var="PVDM_VGG16_WEIGHTS",
    sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    source=(
        "download https://download.pytorch.org/models/vgg16-397923af.pth (torchvision's ImageNet "
        "VGG16, 528 MB) and put it in the pvdm cache folder ($PVDM_HOME/weights, default "
        "~/.cache/pvdm/weights) or point $PVDM_VGG16_WEIGHTS at it"
    ),
)

# torchvision's VGG16 "D" configuration: conv widths, "M" = 2x2 max-pool
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_LPIPS_TAPS = (3, 8, 15, 22, 29)  # indices in `features` of relu1_2 ... relu5_3
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)


def vgg16_features() -> nn.Sequential:
    """torchvision's vgg16().features, same module indices, so its state-dict keys load strictly."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = v
    return nn.Sequential(*layers)


def lpips_linear_weights_path() -> Path:
    spec = importlib.util.find_spec("torchmetrics")
    if spec is None or spec.origin is None:
        raise MissingWeightsError("LPIPS needs the torchmetrics package (its wheel ships lpips_models/vgg.pth)")
    path = Path(spec.origin).parent / "functional" / "image" / "lpips_models" / "vgg.pth"
    if not path.is_file():
        raise MissingWeightsError(f"LPIPS linear weights not found at {path}; reinstall torchmetrics")
    return path


class LPIPSVGG(nn.Module):
    """LPIPS distance with a frozen VGG16; inputs (B, 3, H, W) in [-1, 1], output (B,).
    Without `vgg_path` the weights stay untrained: the module's shape alone, for memory planning."""

    def __init__(self, vgg_path: str | Path | None, lin_path: str | Path | None = None):
        super().__init__()
        # ImageNet statistics expressed for inputs in [-1, 1] (LPIPS's ScalingLayer)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.features = vgg16_features()[: _LPIPS_TAPS[-1] + 1]  # the pools after relu5_3 are unused
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _LPIPS_CHANNELS)
        self.requires_grad_(False)
        self.eval()
        if vgg_path is not None:
            self._load(vgg_path, lin_path)

    def _load(self, vgg_path: str | Path, lin_path: str | Path | None) -> None:
        state = load_tensors(vgg_path, "torchvision VGG16 state dict")
        try:
            vgg = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
            self.features.load_state_dict(vgg, strict=True)
        except Exception as e:  # other keys or shapes: say which file and why, not a traceback
            raise BadInputError(f"{vgg_path} is not a torchvision VGG16 state dict: {e}") from None
        lin_state = load_tensors(lin_path or lpips_linear_weights_path(), "LPIPS weights file")
        # the LPIPS file names them lin{i}.model.1.weight (index 0 was a dropout)
        self.lins.load_state_dict({f"{i}.weight": lin_state[f"lin{i}.model.1.weight"] for i in range(5)})

    def train(self, mode: bool = True) -> LPIPSVGG:
        return super().train(False)  # a fixed metric: never switch to training mode

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        n = x.shape[0]
        h = (torch.cat([x, y]) - self.shift) / self.scale  # one VGG pass for both images
        dist = torch.zeros(n, device=x.device, dtype=torch.float32)
        tap = 0
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i == _LPIPS_TAPS[tap]:
                fx, fy = _unit_normalize(h[:n]), _unit_normalize(h[n:])
                dist = dist + self.lins[tap]((fx - fy) ** 2).mean(dim=(1, 2, 3)).float()
                tap += 1
        return dist


def _unit_normalize(f: Tensor, eps: float = 1e-10) -> Tensor:
    return f / (f.norm(dim=1, keepdim=True) + eps)


def build_perceptual_loss(
    weight: float, weights_path: str | Path | None = None, spec: WeightsSpec = VGG16_SPEC, check_sha: bool = True
) -> LPIPSVGG | None:
    """LPIPS module when `weight` > 0, else None (so presets without LPIPS need no weights).

    Raises MissingWeightsError naming the VGG16 file when it cannot be found.
    """
    if weight == 0:
        return None
    return LPIPSVGG(resolve_weights(spec, weights_path, check_sha=check_sha))


# --- small pure losses ---------------------------------------------------------------------


def l1_loss(recon: Tensor, target: Tensor) -> Tensor:
    return (recon - target).abs().mean()


def mse_loss(recon: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(recon.float(), target.float())


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator hinge loss: push real logits above 1 and fake below -1."""
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def generator_loss(fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()


def feature_matching_loss(real_features: list[Tensor], fake_features: list[Tensor]) -> Tensor:
    """Sum over discriminator blocks of L1(fake, real); real features act as fixed targets."""
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real_features, fake_features, strict=True))
