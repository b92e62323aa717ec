"""Trained artifacts: checkpoint kinds, model factories, and loaders of a trained autoencoder and
diffusion model, with one weights hash and one parameter count.

Dependencies point one way: models -> artifacts (this, convert) -> the commands above
(generate.sample, training's loops and encode). A checkpoint's config builds its model, so later
commands need only the checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pvdm_core.base.config import Config
from pvdm_core.base.errors import BadInputError
from pvdm_core.diffusion.process import NoiseSchedule
from pvdm_core.io.checkpoint import checkpoint_config, load_checkpoint
from pvdm_core.models.autoencoder import ProjectedAutoencoder
from pvdm_core.models.unet import TriplaneUNet

AE_KIND = "autoencoder"  # checkpoint "kind" of train-ae runs (and converted release autoencoders)
DIFFUSION_KIND = "diffusion"  # checkpoint "kind" of train-diffusion runs


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def joint_attention_parameters(unet: TriplaneUNet) -> int:
    """Parameters of the UNet's cross-plane (joint) attention layers only."""
    return sum(count_parameters(m) for m in [*unet.down_joint, unet.mid_joint, *unet.up_joint])


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """Identity of a set of weights (names and exact bytes): latents and diffusion models record
    the hash of the autoencoder they belong to, and another one is refused."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        h.update(name.encode())
        h.update(state_dict[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def build_autoencoder(cfg: Config) -> ProjectedAutoencoder:
    return ProjectedAutoencoder(cfg.ae, cfg.data.frames, cfg.data.resolution)


def build_unet(cfg: Config) -> TriplaneUNet:
    return TriplaneUNet(cfg.unet, cfg.ae.latent_channels)


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: str, what: str) -> None:
    """load_state_dict with a one-line error naming the file instead of torch's key listing."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise BadInputError(f"{path} does not match the {what} its config describes "
                            f"(written by another pvdm version?): {str(e).splitlines()[0]}") from None


@dataclass
class LoadedAE:
    model: ProjectedAutoencoder
    cfg: Config
    ae_hash: str  # weights_hash of the weights: latents from another AE are refused
    path: str


def load_autoencoder(run_or_ckpt: str | Path, device: torch.device) -> LoadedAE:
    """The AE of a train-ae run or checkpoint, EMA weights when the run kept them, in eval mode."""
    state = load_checkpoint(run_or_ckpt, AE_KIND)
    cfg = checkpoint_config(state)
    weights = state.get("ema") or state["model"]
    model = build_autoencoder(cfg)
    load_weights(model, weights, state["path"], "autoencoder")
    return LoadedAE(model.to(device).eval().requires_grad_(False), cfg, weights_hash(weights), state["path"])


@dataclass
class LoadedDiffusion:
    unet: TriplaneUNet
    ae: LoadedAE
    cfg: Config
    schedule: NoiseSchedule
    path: str
    latent_std: tuple[float, ...]  # the model diffuses z / latent_std (all 1 unless diffusion.scale_latents)
    class_names: list[str] = field(default_factory=list)  # label index -> name; empty: unconditional


def newest_run(root: Path = Path("runs")) -> Path:
    """The newest run folder under ./runs holding a diffusion checkpoint (for `sample` without --model)."""
    candidates = [p.parent for p in root.glob("*/latest")] if root.is_dir() else []
    for run in sorted(candidates, key=lambda p: (p / "latest").stat().st_mtime, reverse=True):
        try:
            load_checkpoint(run, DIFFUSION_KIND)
            return run
        except BadInputError:
            continue
    raise BadInputError(f"no diffusion run found under {root}/; pass --model RUN (from `pvdm train-diffusion`)")


def load_diffusion(run_or_ckpt: str | Path | None, device: torch.device, use_ema: bool = True,
                   ae: str | Path | None = None) -> LoadedDiffusion:
    """A trained diffusion model (EMA weights by default) with the autoencoder it was trained on."""
    state = load_checkpoint(run_or_ckpt if run_or_ckpt is not None else newest_run(), DIFFUSION_KIND)
    cfg = checkpoint_config(state)
    unet = build_unet(cfg)
    if "model" not in state and not use_ema:
        raise BadInputError(f"{state['path']} holds EMA weights only (converted from an ema_* file); drop --no-ema, "
                            f"or convert again with --raw model_*.pth")
    load_weights(unet, state["ema"] if use_ema and "ema" in state else state["model"], state["path"], "UNet")
    ae_path = ae or state["ae_path"]
    if not Path(ae_path).exists():
        raise BadInputError(f"the autoencoder this model was trained on is gone ({ae_path}); pass --ae RUN")
    loaded_ae = load_autoencoder(ae_path, device)
    if loaded_ae.ae_hash != state["ae_hash"]:
        raise BadInputError(f"{ae_path} is not the autoencoder {state['path']} was trained on "
                            f"(ae_hash {loaded_ae.ae_hash}, expected {state['ae_hash']})")
    return LoadedDiffusion(unet.to(device).eval().requires_grad_(False), loaded_ae, cfg,
                           NoiseSchedule.from_config(cfg.diffusion), state["path"], tuple(state["latent_std"]),
                           list(state.get("class_names", [])))
