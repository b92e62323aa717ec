"""The public release's code (github sihyun-yu/PVDM, commit 793172f), imported from its checkout,
and its models' full sizes: what vs_release.py and release_speed.py both build on.

None of the release's code is copied here. Modules the release imports but the compared code
never calls (tqdm's bar, torchvision's make_grid) are stubbed when they are not installed.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

FULL_AE = {"embed_dim": 4, "ddconfig": {"channels": 384, "resolution": 256, "timesteps": 16, "splits": 1}}
FULL_UNET = {"image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 256,
             "attention_resolutions": [4, 2, 1], "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4], "num_heads": 8,
             "use_scale_shift_norm": True, "resblock_updown": True, "cond_model": True}


def import_release(path: Path) -> types.SimpleNamespace:
    for name in ("tqdm", "torchvision", "torchvision.utils"):
        try:
            __import__(name)
        except ImportError:  # imported by losses/ddpm.py, never called on the compared paths
            stub = types.ModuleType(name)
            stub.__spec__ = importlib.machinery.ModuleSpec(name, None)  # torch._dynamo looks modules up
            stub.tqdm = lambda it, *a, **k: it
            stub.make_grid = None
            stub.utils = stub
            sys.modules[name] = stub
    sys.path.insert(0, str(path))
    from losses.ddpm import DDPM
    from models.autoencoder.autoencoder_vit import ViTAutoencoder
    from models.ddpm.unet import DiffusionWrapper, UNetModel

    return types.SimpleNamespace(DDPM=DDPM, ViTAutoencoder=ViTAutoencoder, UNetModel=UNetModel,
                                 DiffusionWrapper=DiffusionWrapper)
