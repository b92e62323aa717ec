"""`pvdm convert`: the public release's checkpoint files -> ordinary pvdm run folders (spec §7).

The release saves bare state dicts (`torch.save(module.state_dict())`): an autoencoder
(`model_last.pth`, ViTAutoencoder, 415 entries) or a diffusion model (`model_{it}.pth` raw,
`ema_model_{it}.pth` EMA; 559 entries prefixed `diffusion_model.`). A DDP save adds `module.`.
Files are read with `weights_only=True`, so nothing in them runs, and every tensor is checked
against the shape the chosen config gives before anything is written.

Each pvdm parameter has one release name (`release_ae_name`, `release_unet_name`) and a
transform: identity, a 1x1 conv squeezed to a Linear, a row slice of a fused Linear
(q | k | v, GEGLU value | gate), or the permutation of ADM's legacy qkv rows
(head, {q, k, v}, head_dim) to pvdm's ({q, k, v}, head, head_dim).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from einops import rearrange
from torch import Tensor

from pvdm_core.artifacts.load import (AE_KIND, DIFFUSION_KIND, build_autoencoder, build_unet, load_autoencoder,
                                      weights_hash)
from pvdm_core.base.config import Config, load_config
from pvdm_core.base.errors import BadInputError
from pvdm_core.io.checkpoint import LATEST, load_checkpoint, load_tensors, save_checkpoint
from pvdm_core.io.runs import prepare_run_dir
from pvdm_core.io.weights import sha256_file

Kind = Literal["auto", "autoencoder", "diffusion"]
CHECKPOINT_NAME = "release.pt"
# Presets tried, in order, when --preset is not given; ucf and sky share every shape.
PRESET_ORDER = ("ucf256", "sky256", "ucf128", "sky128")
# Buffers of the release's autoencoder that are fixed functions of its config (pvdm computes them).
DERIVED_AE_BUFFERS = {"coords", "encoder.frame_rot_emb.inv_freqs", "encoder.image_rot_emb.scales",
                      "decoder.frame_rot_emb.inv_freqs", "decoder.image_rot_emb.scales"}
DERIVED_UNET_BUFFERS = {"zeros"}  # the (1, C, 2048) zero condition
UNET_PREFIX = "diffusion_model."

Transform = Callable[[Tensor], Tensor]


# --- reading a release file ----------------------------------------------------------------


def read_release_file(path: Path) -> dict[str, Tensor]:
    """The state dict in a release file, `module.` prefixes stripped; one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):  # torch.save's format is a zip archive; a cut one has no directory
        raise BadInputError(f"{path} is not a readable PyTorch checkpoint (truncated or another format?)")
    state = load_tensors(path)
    if isinstance(state, dict) and "kind" in state and "config" in state:
        raise BadInputError(f"{path} is already a pvdm checkpoint ({state['kind']}); it needs no conversion")
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise BadInputError(f"{path} is not a state dict of tensors (the release's checkpoint format)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def detect_kind(state: dict[str, Tensor]) -> Literal["autoencoder", "diffusion"] | None:
    if "xy_token" in state and "encoder.to_patch_embedding.weight" in state:
        return "autoencoder"
    if any(k.startswith(UNET_PREFIX) for k in state) and f"{UNET_PREFIX}time_embed.0.weight" in state:
        return "diffusion"
    return None


# --- key maps ------------------------------------------------------------------------------


def _rows(i: int, n: int) -> Transform:
    """Row block i of n equal blocks (q | k | v of to_qkv, value | gate of GEGLU's Linear)."""
    return lambda t: t.chunk(n, dim=0)[i]


def _squeeze_1x1(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1) if t.ndim > 1 else t


_PLANES = {"proj_s": "xy", "proj_h": "yt", "proj_w": "xt", "from_s": "xy", "from_h": "yt", "from_w": "xt"}
_VIDEO_BLOCK = {"norm_t": "0.norm", "attn_t": "0.fn", "norm_s": "1.norm", "attn_s": "1.fn",
                "norm_ff": "2.norm", "ff": "2.fn"}


def release_ae_name(key: str) -> tuple[str, Transform | None]:
    """The release's name of pvdm autoencoder parameter `key`, and the transform to apply."""
    if key.startswith("patch_embed."):
        return "encoder.to_patch_embedding." + key.split(".", 1)[1], None
    if key.startswith("to_pixels."):
        return "to_pixel.1." + key.split(".", 1)[1], None
    if m := re.fullmatch(r"from_([shw])\.(weight|bias)", key):
        return f"post_{_PLANES['from_' + m[1]]}.{m[2]}", _squeeze_1x1
    if m := re.fullmatch(r"(encoder|decoder)\.blocks\.(\d+)\.(\w+)\.(.+)", key):
        stack, i, part, rest = m.groups()
        base = f"{stack}.layers.{i}.{_VIDEO_BLOCK[part]}"
        return _attention_or_ff(base, rest)
    if m := re.fullmatch(r"(proj_[shw])\.(.+)", key):
        plane, rest = _PLANES[m[1]], m[2]
        if rest in ("token", "pos"):
            return f"{plane}_{'token' if rest == 'token' else 'pos_embedding'}", None
        if rest.startswith("to_latent."):
            return f"pre_{plane}.{rest.split('.', 1)[1]}", _squeeze_1x1
        i, part, tail = re.fullmatch(r"layers\.(\d+)\.(\w+)\.(.+)", rest).groups()
        sub = {"norm_attn": "0.norm", "attn": "0.fn", "norm_mlp": "1.norm", "mlp": "1.fn.net"}[part]
        base = f"{plane}_quant_attn.layers.{i}.{sub}"
        if part == "mlp":  # Sequential(Linear, GELU, Linear) <- net (Linear, GELU, Dropout, Linear, ...)
            idx, tail = tail.split(".", 1)
            return f"{base}.{ {'0': '0', '2': '3'}[idx]}.{tail}", None
        return _attention_or_ff(base, tail)
    raise KeyError(key)


def _attention_or_ff(base: str, rest: str) -> tuple[str, Transform | None]:
    table = {"to_q.weight": ("to_qkv.weight", _rows(0, 3)),
             "to_kv.weight": ("to_qkv.weight", lambda t: torch.cat(t.chunk(3, dim=0)[1:])),
             "out.weight": ("to_out.0.weight", None), "out.bias": ("to_out.0.bias", None),
             "value.weight": ("net.0.weight", _rows(0, 2)), "value.bias": ("net.0.bias", _rows(0, 2)),
             "gate.weight": ("net.0.weight", _rows(1, 2)), "gate.bias": ("net.0.bias", _rows(1, 2)),
             "proj_out.weight": ("net.3.weight", None), "proj_out.bias": ("net.3.bias", None),
             "weight": ("weight", None), "bias": ("bias", None)}
    name, fn = table[rest]
    return f"{base}.{name}", fn


_RESBLOCK = {"in_norm": "in_layers.0", "in_conv": "in_layers.2", "emb_proj": "emb_layers.1",
             "out_norm": "out_layers.0", "out_conv": "out_layers.3", "skip": "skip_connection"}


def release_unet_name(key: str, heads: int) -> tuple[str, Transform | None]:
    """The release's name (without `diffusion_model.`) of pvdm UNet parameter `key`."""
    if key.startswith(("time_embed.", "out.")):
        return key, None
    if key.startswith("conv_in."):
        return "input_blocks.0.0." + key.split(".", 1)[1], None
    if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.layers\.(\d+)\.(.+)", key):
        i = int(m[2]) + (1 if m[1] == "down" else 0)  # the release's input_blocks.0 is the input conv
        return _unet_layer(f"{'input' if m[1] == 'down' else 'output'}_blocks.{i}.{m[3]}", m[4], heads)
    if m := re.fullmatch(r"mid_block\.layers\.(\d+)\.(.+)", key):
        return _unet_layer(f"middle_block.{m[1]}", m[2], heads)
    if m := re.fullmatch(r"(down|up)_joint\.(\d+)\.(.+)", key):
        i = int(m[2]) + (1 if m[1] == "down" else 0)  # input_attns.0 is an Identity after the input conv
        return _unet_layer(f"{'input' if m[1] == 'down' else 'output'}_attns.{i}", m[3], heads)
    if key.startswith("mid_joint."):
        return _unet_layer("mid_attn", key.split(".", 1)[1], heads)
    raise KeyError(key)


def _unet_layer(base: str, rest: str, heads: int) -> tuple[str, Transform | None]:
    part, tail = rest.split(".", 1)
    if part in _RESBLOCK:
        return f"{base}.{_RESBLOCK[part]}.{tail}", None
    if part == "norm":
        return f"{base}.norm.{tail}", None
    if part == "proj":
        return f"{base}.proj_out.{tail}", _squeeze_1x1
    if part == "qkv":  # legacy order (head, {q,k,v}, d) -> pvdm's ({q,k,v}, head, d)
        return f"{base}.qkv.{tail}", lambda t: rearrange(_squeeze_1x1(t), "(h three d) ... -> (three h d) ...",
                                                         h=heads, three=3)
    raise KeyError(rest)


# --- conversion ----------------------------------------------------------------------------


def map_state(release: dict[str, Tensor], target: dict[str, Tensor], name_of: Callable[[str], tuple],
              derived: set[str], prefix: str = "") -> dict[str, Tensor]:
    """pvdm state dict with `target`'s keys and shapes, filled from `release`; refuses (one line)
    a missing key, a shape that differs, or a release tensor left over."""
    out, used = {}, set(derived)
    for key, want in target.items():
        try:
            name, fn = name_of(key)
        except KeyError:
            raise BadInputError(f"pvdm parameter {key} has no counterpart in the release's models "
                                f"(a pvdm-only option is on in this config)") from None
        src = release.get(prefix + name)
        if src is None:
            raise BadInputError(f"the release file lacks {prefix + name} (needed for {key})")
        value = fn(src) if fn is not None else src
        if tuple(value.shape) != tuple(want.shape):
            raise BadInputError(f"{prefix + name} has shape {tuple(src.shape)}, the config needs "
                                f"{tuple(want.shape)} (for {key})")
        out[key] = value.to(want.dtype).contiguous().clone()
        used.add(name)
    extra = sorted(k for k in release if k.removeprefix(prefix) not in used)
    if extra:
        raise BadInputError(f"the release file holds {len(extra)} tensor(s) this config has no place for, "
                            f"the first {extra[0]} {tuple(release[extra[0]].shape)}")
    return out


def convert_autoencoder(release: dict[str, Tensor], cfg: Config) -> dict[str, Tensor]:
    with torch.device("meta"):
        target = build_autoencoder(cfg).state_dict()
    return map_state(release, target, release_ae_name, DERIVED_AE_BUFFERS)


def convert_unet(release: dict[str, Tensor], cfg: Config) -> dict[str, Tensor]:
    with torch.device("meta"):
        target = build_unet(cfg).state_dict()
    return map_state(release, target, lambda k: release_unet_name(k, cfg.unet.heads),
                     DERIVED_UNET_BUFFERS, UNET_PREFIX)


def _fit_preset(convert: Callable[[Config], Any], preset: str | None, sets: list[str]) -> tuple[Config, Any, list[str]]:
    """(config, converted weights, other presets that fit) for --preset, or the first preset that fits."""
    if preset is not None:
        cfg = load_config(preset, None, sets)
        return cfg, convert(cfg), []
    errors, fits = [], []
    for name in PRESET_ORDER:
        cfg = load_config(name, None, sets)
        try:
            fits.append((cfg, convert(cfg)))
        except BadInputError as e:
            errors.append(f"{name}: {e}")
    if not fits:
        raise BadInputError(f"no preset fits the file's shapes ({errors[0]}); pass --preset and --set")
    return fits[0][0], fits[0][1], [c.preset for c, _ in fits[1:]]


def _source(path: Path) -> dict[str, str]:
    return {"file": str(Path(path).resolve()), "sha256": sha256_file(path), "format": "release (sihyun-yu/PVDM)"}


def convert_release(file: Path, out: Path, kind: Kind = "auto", preset: str | None = None,
                    sets: list[str] | None = None, ae: Path | None = None, raw: Path | None = None) -> dict[str, Any]:
    """Convert one release file (plus, for diffusion, the raw file beside an EMA one) into the
    run folder `out`. Everything is read and checked before anything is written."""
    sets = list(sets or [])
    if (Path(out) / LATEST).exists():
        raise BadInputError(f"{out} already holds a run; choose another -o")
    state = read_release_file(file)
    found = detect_kind(state)
    if found is None:
        raise BadInputError(f"{file} is neither a release autoencoder (no xy_token) nor a release diffusion "
                            f"model (no {UNET_PREFIX}time_embed.0.weight)")
    if kind != "auto" and found != kind:
        raise BadInputError(f"{file} is a release {found} file, not a{'n' if kind[0] == 'a' else ''} {kind}")
    if found == "autoencoder":
        if ae is not None or raw is not None:
            raise BadInputError(f"{file} is an autoencoder: --ae and --raw belong to diffusion files")
        cfg, weights, also = _fit_preset(lambda c: convert_autoencoder(state, c), preset, sets)
        ckpt = {"kind": AE_KIND, "config": cfg.to_dict(), "step": 0, "model": weights, "source": _source(file)}
        result = {"kind": AE_KIND, "ae_hash": weights_hash(weights)}
    else:
        ckpt, cfg, also, result = _diffusion_checkpoint(file, state, preset, sets, ae, raw)
    run = prepare_run_dir(out, cfg, "convert")
    path = save_checkpoint(run / CHECKPOINT_NAME, ckpt)
    return {**result, "checkpoint": str(path), "run_dir": str(run), "preset": cfg.preset, "also_fits": also}


def _diffusion_checkpoint(file: Path, state: dict[str, Tensor], preset: str | None, sets: list[str],
                          ae: Path | None, raw: Path | None) -> tuple[dict, Config, list[str], dict]:
    if ae is None:
        raise BadInputError(f"{file} is a diffusion model: pass --ae RUN, the autoencoder converted with "
                            f"`pvdm convert model_last.pth -o RUN`")
    if Path(ae).is_file() and Path(ae).suffix == ".pth":
        raise BadInputError(f"--ae {ae} looks like a release file: convert it first (`pvdm convert {ae} -o RUN`)")
    if Path(ae).is_dir() or Path(ae).is_file():
        load_checkpoint(ae, AE_KIND)  # names the kind when a diffusion run is given as --ae
    loaded = load_autoencoder(ae, torch.device("cpu"))
    base = loaded.cfg.preset if preset is None else preset
    user_base = any(s.split("=", 1)[0].strip() == "unet.base_channels" for s in sets)
    width = state[f"{UNET_PREFIX}time_embed.0.weight"].shape[1]  # PVDM-L 256, PVDM-S 128
    sets = sets if user_base else [f"unet.base_channels={width}", *sets]
    cfg = load_config(base, None, sets)
    cfg.ae, cfg.data = loaded.cfg.ae, loaded.cfg.data  # the autoencoder defines the latent space
    ema_file = Path(file).name.startswith("ema_")
    weights = {"ema" if ema_file else "model": convert_unet(state, cfg)}
    if raw is not None:
        raw_state = read_release_file(raw)
        if detect_kind(raw_state) != "diffusion":
            raise BadInputError(f"--raw {raw} is not a release diffusion file")
        weights["model"] = convert_unet(raw_state, cfg)
    ckpt = {"kind": DIFFUSION_KIND, "config": cfg.to_dict(), "step": 0, **weights,
            "ae_path": str(Path(loaded.path).resolve()), "ae_hash": loaded.ae_hash, "latent_std": [1.0, 1.0, 1.0],
            "source": _source(file)}
    return ckpt, cfg, [], {"kind": DIFFUSION_KIND, "ae_hash": loaded.ae_hash, "weights": sorted(weights)}
