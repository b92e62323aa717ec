"""pvdm from Python: the public API (stable across minor versions; everything else may move).

    import pvdm
    model = pvdm.load("runs/dm")                  # a train-diffusion run, checkpoint or converted release
    videos = model.sample(4, frames=32, seed=0)   # uint8 (4, 32, R, R, 3), equal to `pvdm sample`'s
    longer = model.extend(videos[0], 16)          # (48, R, R, 3): the input, then 16 new frames
    z = model.autoencoder.encode(videos[:, :model.frames])   # Latents (z_s, z_h, z_w)
    real = pvdm.synthetic(4, frames=32)           # the embedded moving-shapes dataset
    pvdm.fvd(real, videos, frames=16)["fvd"]      # the dict `pvdm eval-fvd --json` prints
    pvdm.contact_sheet(videos).save("grid.png")   # a frame grid
    pvdm.write_video("v.mp4", videos[0]); pvdm.read_video("v.mp4")

Videos are numpy uint8 arrays, (T, H, W, 3) for one, (N, T, H, W, 3) for several. Errors are
pvdm's typed exceptions: BadInputError (bad input or usage: what the CLI exits 2 on, with the
same message), MissingWeightsError and ClipTooShortError (kinds of BadInputError), and
PvdmError (their base; other failures). docs/python_api.md walks through it.

`import pvdm` stays light: torch and the models load on first use of what needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pvdm.config import Config, Overrides, load_config
from pvdm_core import __version__
from pvdm_core.base.errors import BadInputError, ClipTooShortError, MissingWeightsError, PvdmError

if TYPE_CHECKING:
    from pvdm.evaluation import fvd, fvd_options
    from pvdm.model import Autoencoder, Model, load, load_autoencoder
    from pvdm.videos import contact_sheet, read_video, synthetic, write_video
    from pvdm_core.models.autoencoder import Latents

_LAZY = {  # name -> module, imported on first access (these import torch)
    "load": "pvdm.model", "load_autoencoder": "pvdm.model", "Model": "pvdm.model", "Autoencoder": "pvdm.model",
    "fvd": "pvdm.evaluation", "fvd_options": "pvdm.evaluation",
    "read_video": "pvdm.videos", "write_video": "pvdm.videos", "synthetic": "pvdm.videos",
    "contact_sheet": "pvdm.videos", "Latents": "pvdm_core.models.autoencoder",
}

__all__ = ["Autoencoder", "BadInputError", "ClipTooShortError", "Config", "Latents", "MissingWeightsError", "Model",
           "Overrides", "PvdmError", "__version__", "contact_sheet", "fvd", "fvd_options", "load", "load_autoencoder",
           "load_config", "read_video", "synthetic", "write_video"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pvdm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
