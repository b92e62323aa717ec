"""What `pvdm info` reports: device choice, versions, weight locations, model sizes."""

from __future__ import annotations

import platform
from typing import Any

import torch

from pvdm_core.config import Config
from pvdm_core.device import choose_device
from pvdm_core.weights import pvdm_home


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_sizes(cfg: Config) -> dict[str, int]:
    """Parameter counts of the preset's models, built on the meta device (no memory, instant)."""
    from pvdm_core.models.autoencoder import ProjectedAutoencoder
    from pvdm_core.models.unet import TriplaneUNet

    with torch.device("meta"):
        ae = ProjectedAutoencoder(cfg.ae, cfg.data.frames, cfg.data.resolution)
        unet = TriplaneUNet(cfg.unet, cfg.ae.latent_channels)
    return {"ae_params": count_params(ae), "unet_params": count_params(unet)}


def environment_info(device: str | None = None, amp: str = "auto") -> dict[str, Any]:
    from pvdm_core.losses import VGG16_WEIGHTS
    from pvdm_core.models.i3d import I3D_WEIGHTS

    choice = choose_device(device, amp)
    return {
        "pvdm": __import__("pvdm_core").__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_devices": torch.cuda.device_count(),
        "device": str(choice.device),
        "device_reason": choice.reason,
        "amp_dtype": str(choice.amp_dtype).replace("torch.", "") if choice.amp_dtype else None,
        "pvdm_home": str(pvdm_home()),
        "weights": {
            spec.filename: [f"{origin}: {path}" for origin, path in spec.candidates()]
            for spec in (VGG16_WEIGHTS, I3D_WEIGHTS)
        },
    }
