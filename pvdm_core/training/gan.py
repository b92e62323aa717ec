"""The autoencoder's GAN phase (spec §1): two PatchGAN critics and the divergence guard.

From `disc_start` on, a 2D PatchGAN judges one random frame per clip and a 3D PatchGAN the
clip (hinge loss for the critics; -mean(logits) and feature matching for the autoencoder).
The phase can diverge suddenly (the reference authors stop it by hand): the guard watches
held-out PSNR and says when to roll back to the last good checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from pvdm_core.base import distributed as dist
from pvdm_core.base.config import AETrainConfig
from pvdm_core.models.discriminator import PatchDiscriminator2D, PatchDiscriminator3D
from pvdm_core.training.losses import feature_matching_loss, generator_loss, hinge_d_loss
from pvdm_core.training.toolbox import average_gradients, optimizer_step

Pick = Callable[[Tensor], Tensor]  # (B, 3, T, H, W) -> (B, 3, H, W): the frame judged per clip


class Critics:
    """The 2D and 3D PatchGANs and their optimizer (outside DDP: gradients averaged by hand)."""

    def __init__(self, tc: AETrainConfig, device: torch.device):
        with device:  # made there, not moved: fake tensors (memory planning) cannot be moved
            self.disc2d = PatchDiscriminator2D(tc.disc_channels, tc.disc_layers)
            self.disc3d = PatchDiscriminator3D(tc.disc_channels, tc.disc_layers)
        if dist.world_size() > 1:  # batch statistics over the global batch, as one process would see
            self.disc2d, self.disc3d = map(torch.nn.SyncBatchNorm.convert_sync_batchnorm, (self.disc2d, self.disc3d))
        self.params = [*self.disc2d.parameters(), *self.disc3d.parameters()]
        self.opt = torch.optim.AdamW(self.params, lr=tc.disc_lr, betas=tuple(tc.betas))

    def parts(self) -> dict[str, Any]:
        """Their checkpoint keys."""
        return {"disc2d": self.disc2d, "disc3d": self.disc3d, "opt_d": self.opt}

    def generator_terms(self, recon: Tensor, x: Tensor, pick: Pick) -> dict[str, Tensor]:
        """The autoencoder's adversarial loss and feature matching, critics frozen."""
        self.disc2d.requires_grad_(False), self.disc3d.requires_grad_(False)
        f2, feats_f2 = self.disc2d(pick(recon))
        f3, feats_f3 = self.disc3d(recon)
        _, feats_r2 = self.disc2d(pick(x))
        _, feats_r3 = self.disc3d(x)
        return {"g_adv": generator_loss(f2) + generator_loss(f3),
                "fm": feature_matching_loss(feats_r2, feats_f2) + feature_matching_loss(feats_r3, feats_f3)}

    def loss(self, recon: Tensor, x: Tensor, pick: Pick) -> Tensor:
        """The critics' hinge loss on real clips and (detached) reconstructions."""
        self.disc2d.requires_grad_(True), self.disc3d.requires_grad_(True)
        r2, _ = self.disc2d(pick(x))
        r3, _ = self.disc3d(x)
        d2, _ = self.disc2d(pick(recon.detach()))
        d3, _ = self.disc3d(recon.detach())
        return hinge_d_loss(r2, d2) + hinge_d_loss(r3, d3)

    def step(self, scaler: torch.amp.GradScaler, lr: float) -> None:
        average_gradients(self.params)
        for group in self.opt.param_groups:
            group["lr"] = lr
        optimizer_step(self.opt, scaler)


class Verdict(NamedTuple):
    action: Literal["keep", "rollback", "stop"]  # keep: save good.pt; else roll back to it
    psnr: float
    best: float  # best held-out PSNR of the window
    note: str  # what changed, for the log: "GAN learning rate scaled to 0.5", "GAN phase stopped"


class GanGuard:
    """Held-out PSNR more than `tolerance_db` below the best of the last `window` steps is a
    divergence: the first asks for a rollback with half the GAN learning rate, the second ends
    the GAN phase (also after the rollback)."""

    def __init__(self, active: bool, window: int, tolerance_db: float):
        self.window, self.tolerance_db = window, tolerance_db
        self.active, self.lr_scale, self.rollbacks = active, 1.0, 0
        self.history: list[tuple[int, float]] = []  # (step, psnr) of the good evaluations

    def check(self, step: int, psnr: float) -> Verdict:
        best = max((p for s, p in self.history if s > step - self.window), default=psnr)
        if psnr >= best - self.tolerance_db:
            self.history.append((step, psnr))
            return Verdict("keep", psnr, best, "")
        self.rollbacks += 1
        if self.rollbacks >= 2:
            self.active = False
            return Verdict("stop", psnr, best, "GAN phase stopped")
        self.lr_scale *= 0.5
        return Verdict("rollback", psnr, best, f"GAN learning rate scaled to {self.lr_scale}")

    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active, "lr_scale": self.lr_scale, "rollbacks": self.rollbacks,
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active, self.lr_scale, self.rollbacks = state["active"], state["lr_scale"], state["rollbacks"]
        self.history = [tuple(h) for h in state["history"]]
