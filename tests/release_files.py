"""Release-format checkpoint files for tests, made without the release's code.

`tests/data/release_manifest.json` holds, per model, the release's state-dict keys and shapes
in its own order (facts measured once with the release code at commit 793172f by
`python benchmarks/vs_release.py --release PATH --write-test-data`), plus the values of its
small derived buffers. `synthetic_release_state` fills those shapes with seeded numbers, so a
test and the golden-output generator build exactly the same file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"
MANIFEST = DATA / "release_manifest.json"
GOLDEN = DATA / "release_golden.pt"

# The small models the golden outputs come from; the release's classes run at these sizes.
SMALL_AE = {"embed_dim": 4, "ddconfig": {"channels": 32, "resolution": 64, "timesteps": 4, "splits": 1}}
SMALL_UNET = {"image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 32,
              "attention_resolutions": [2, 1], "num_res_blocks": 1, "channel_mult": [1, 2], "num_heads": 2,
              "use_scale_shift_norm": True, "resblock_updown": True, "cond_model": True}
# pvdm --set lines giving the same models (frames/resolution as the small AE, 2048 latent
# positions as the release's hard-coded 32x32 + 2 x 16x32 planes).
SMALL_AE_SETS = ["data.frames=4", "data.resolution=64", "ae.dim=32", "ae.proj_head_dim=4"]
SMALL_UNET_SETS = ["unet.base_channels=32", "unet.channel_mult=[1, 2]", "unet.num_res_blocks=1",
                   "unet.attn_levels=[0, 1]", "unet.heads=2"]


def manifest(name: str) -> dict:
    """{"params": {key: shape}, "buffers": {key: {"shape", "values" or "fill"}}, "order": [...]}"""
    return json.loads(MANIFEST.read_text())[name]


def synthetic_release_state(entry: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the release's key order: parameters seeded randn scaled like an init
    (1/sqrt(fan in) for matrices, 1 +- 0.1 for norm weights, 0.1 for biases, 1 for the release's
    unit-normal tokens and position embeddings); derived buffers with their recorded values."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in entry["order"]:
        if key in entry["buffers"]:
            buf = entry["buffers"][key]
            out[key] = (torch.tensor(buf["values"]).reshape(buf["shape"]) if "values" in buf
                        else torch.full(buf["shape"], float(buf["fill"])))
            continue
        shape = entry["params"][key]
        x = torch.randn(shape, generator=g)
        if key.endswith(("token", "pos_embedding")):
            out[key] = x
        elif len(shape) >= 2:
            out[key] = x / math.sqrt(math.prod(shape[1:]))
        elif "norm" in key and key.endswith("weight") or key.endswith(("in_layers.0.weight", "out_layers.0.weight")):
            out[key] = 1 + 0.1 * x
        else:
            out[key] = 0.1 * x
    return out


def write_release_file(path: Path, name: str, seed: int = 0, prefix: str = "") -> Path:
    state = synthetic_release_state(manifest(name), seed)
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return path
