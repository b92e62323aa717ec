"""Stage 1: train the projected autoencoder (`pvdm train-ae`), one loop read top to bottom.

Losses (spec §1): L1 + LPIPS-VGG16 on one random frame per clip; from `disc_start` on, a 2D
PatchGAN on that frame and a 3D PatchGAN on the clip (hinge loss, generator -mean(logits),
feature matching; pvdm_core/training/gan.py). The GAN phase can diverge suddenly (the reference
authors stop it by hand): here held-out PSNR is watched, and a drop of more than
`divergence_tolerance_db` below the best of the last `divergence_window` steps rolls back to
the last good checkpoint with half the GAN learning rate; the second divergence ends the GAN phase.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from pvdm_core.artifacts.load import AE_KIND, build_autoencoder
from pvdm_core.base import distributed as dist
from pvdm_core.base.config import AETrainConfig, Config
from pvdm_core.base.device import DeviceChoice, autocast
from pvdm_core.base.progress import log
from pvdm_core.data.datasets import build_dataset
from pvdm_core.io.checkpoint import load_checkpoint
from pvdm_core.models.autoencoder import Latents, ProjectedAutoencoder
from pvdm_core.training.gan import Critics, GanGuard, Pick, Verdict
from pvdm_core.training.losses import build_perceptual_loss, l1_loss, mse_loss
from pvdm_core.training.reporting import RunReporter
from pvdm_core.training.toolbox import (EMA, Pace, StepBatchSampler, StopRequest, TimeBudget, TrainState, check_finite,
                                        due, grad_accumulation, grad_scaler, latest_checkpoint, micro_batches,
                                        optimizer_step, rank_rows, set_lr, step_generator, wrap_for_training)
from pvdm_core.io.video_io import to_uint8, unit_range, write_video

GAN_PARTS = ("disc2d", "disc3d", "opt_d")  # checkpoint keys of the critics (absent before the GAN phase)
ROLLBACK_PARTS = ("model", "optimizer", "ema", *GAN_PARTS)  # what a divergence rewinds: not the scaler or guard


@dataclass
class AETrainOptions:
    run_dir: Path
    device: DeviceChoice
    max_time: float | None = None  # seconds
    vgg_weights: str | None = None
    strict: bool = False
    time_budget: TimeBudget | None = None  # the lr schedule follows the clock too (`pvdm demo`)


@torch.no_grad()
def evaluate(model: ProjectedAutoencoder, clips: Tensor, device: DeviceChoice, batch: int) -> tuple[dict, Tensor]:
    """Held-out PSNR (dB, data range 2) and SSIM over all frames; returns the reconstructions."""
    model.eval()
    recons = []
    for i in range(0, len(clips), batch):
        with autocast(device):
            recons.append(model(clips[i : i + batch].to(device.device))[0].float().cpu())
    model.train()
    recon = torch.cat(recons)
    frames = lambda v: v.transpose(1, 2).flatten(0, 1)  # (B, 3, T, H, W) -> (B*T, 3, H, W)
    psnr = float(peak_signal_noise_ratio(recon.clamp(-1, 1), clips, data_range=2.0))
    ssim = float(structural_similarity_index_measure(frames(recon.clamp(-1, 1)), frames(clips), data_range=2.0))
    return {"psnr": psnr, "ssim": ssim}, recon


def write_preview(path: Path, clips: Tensor, recon: Tensor) -> None:
    """Input | reconstruction side by side, clips stacked vertically."""
    rows = [np.concatenate([to_uint8(a), to_uint8(b)], axis=2) for a, b in zip(clips[:4], recon[:4])]
    write_video(path, np.concatenate(rows, axis=1), fps=8)


def autoencoder_loss(recon: Tensor, x: Tensor, pick: Pick, tc: AETrainConfig, lpips: torch.nn.Module | None,
                     critics: Critics | None) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted L1, LPIPS on the picked frames and (critics given: the GAN phase) adversarial
    and feature-matching terms; the total and its parts."""
    parts = {"l1": l1_loss(recon, x)}
    loss = tc.l1_weight * parts["l1"]
    if tc.mse_weight > 0:
        parts["mse"] = mse_loss(recon, x)
        loss = loss + tc.mse_weight * parts["mse"]
    if lpips is not None:
        parts["lpips"] = lpips(pick(recon), pick(x)).mean()
        loss = loss + tc.perceptual_weight * parts["lpips"]
    if critics is not None:
        parts.update(critics.generator_terms(recon, x, pick))
        loss = loss + tc.disc_weight * parts["g_adv"] + tc.feature_match_weight * parts["fm"]
    return loss, parts


def latent_noise(model: ProjectedAutoencoder, tc: AETrainConfig, g: torch.Generator) -> Latents | None:
    """This rank's rows of the step's latent noise (`ae_train.latent_noise`), drawn for the global
    batch from the step's generator after every other draw; None when off (nothing drawn)."""
    if tc.latent_noise <= 0:
        return None
    shapes = model.latent_shapes().values()
    noise = Latents(*(tc.latent_noise * torch.randn((tc.batch_size, *shape), generator=g) for shape in shapes))
    return noise.take(rank_rows())


def micro_step(forward: torch.nn.Module, x: Tensor, frame_idx: Tensor, tc: AETrainConfig,
               lpips: torch.nn.Module | None, critics: Critics | None, scaler: torch.amp.GradScaler,
               device: DeviceChoice, sync: contextlib.AbstractContextManager,
               noise: Latents | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """One micro-batch's forward and backward (gradients scaled by 1 / grad_accum accumulate):
    the autoencoder's loss, then, with `critics` (the GAN phase), the critics' hinge loss on the
    same clips. `frame_idx` (B,) picks the frame LPIPS and the 2D critic see; `sync` is DDP's;
    `noise` is added to the latents before decoding (`ae_train.latent_noise`)."""
    pick = lambda v: v[torch.arange(len(frame_idx), device=v.device), :, frame_idx]  # (B, 3, H, W)
    with autocast(device), sync:
        recon, _ = forward(x, noise) if noise is not None else forward(x)
        loss, parts = autoencoder_loss(recon, x, pick, tc, lpips, critics)
        scaler.scale(loss / tc.grad_accum).backward()
    if critics is not None:
        with autocast(device):
            parts["d_loss"] = critics.loss(recon, x, pick)
        scaler.scale(parts["d_loss"] / tc.grad_accum).backward()
    return loss, parts


def apply_verdict(verdict: Verdict, state: TrainState, run_dir: Path, report: RunReporter) -> None:
    """The GAN guard's verdict: a healthy state becomes good.pt; on a divergence the weights and
    optimizers of good.pt come back (the step goes on)."""
    if verdict.action == "keep":
        state.save(run_dir, "good.pt")
        return
    good = load_checkpoint(run_dir / "good.pt", AE_KIND)
    state.load_state_dict(good, only=ROLLBACK_PARTS)
    log(f"GAN divergence at step {state.step}: held-out PSNR {verdict.psnr:.2f} dB vs best {verdict.best:.2f} dB; "
        f"weights rolled back to those of step {good['step']}; {verdict.note}")
    report.write(step=state.step, event="gan_divergence", psnr=verdict.psnr, best_psnr=verdict.best,
                  rolled_back_to=good["step"], action=verdict.note)


def skipped_videos(*datasets: torch.utils.data.Dataset) -> int:
    """How many unreadable videos the datasets skipped (said on stderr when any)."""
    skipped = sum(len(getattr(d, "skipped", {})) for d in datasets)
    if skipped:
        log(f"skipped {skipped} unreadable video(s)")
    return skipped


def train_autoencoder(cfg: Config, opts: AETrainOptions) -> dict[str, Any]:
    tc, device, run_dir = cfg.ae_train, opts.device, opts.run_dir
    main = dist.is_main()
    report = RunReporter(run_dir, "train-ae", tc.steps, cfg.run.tensorboard, enabled=main)
    torch.manual_seed(cfg.run.seed)

    # 1. models, optimizers; the critics only if the GAN phase is on the schedule
    model = build_autoencoder(cfg).to(device.device)
    model.set_grad_checkpoint(tc.grad_checkpoint)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    ema = EMA(model, tc.ema_decay) if tc.ema_decay > 0 else None
    lpips = build_perceptual_loss(tc.perceptual_weight, opts.vgg_weights)
    lpips = lpips.to(device.device) if lpips is not None else None
    use_gan = 0 <= tc.disc_start < tc.steps
    critics = Critics(tc, device.device) if use_gan else None
    guard = GanGuard(use_gan, tc.divergence_window, tc.divergence_tolerance_db)
    scaler = grad_scaler(device)
    state = TrainState({"kind": AE_KIND, "config": cfg.to_dict()}, cfg.run.keep_checkpoints, model=model,
                       optimizer=opt, scaler=scaler, gan=guard, ema=ema, **(critics.parts() if critics else {}))

    # 2. resume: the same --out continues where the last checkpoint left off
    saved = latest_checkpoint(run_dir, AE_KIND, cfg, ("ae", "data.frames", "data.resolution"))
    if saved is not None:
        state.load_state_dict(saved, optional=(*GAN_PARTS, "gan"))
        if main:
            log(f"resuming from {saved['path']} at step {state.step}")

    # 3. data: step k's batch is a pure function of (seed, k), so resuming replays nothing
    micro = micro_batches(tc.batch_size, tc.grad_accum)
    train_set = build_dataset(cfg.data, "train", seed=cfg.run.seed, strict=opts.strict, uint8=True)
    test_set = build_dataset(cfg.data, "test", strict=opts.strict)
    test_clips = torch.stack([test_set[i] for i in range(min(tc.eval_clips, len(test_set)))])
    sampler = StepBatchSampler(len(train_set), tc.batch_size, cfg.run.seed, state.step, tc.steps, epochs=True)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                        pin_memory=device.device.type == "cuda", persistent_workers=False)
    ddp, forward = wrap_for_training(model, cfg.run.compile)

    # 4. the loop
    last_eval: dict = {}
    pace = Pace()
    with StopRequest(opts.max_time, device.device) as stop, report.live(state.step):
        for clips in loader:
            # which frame of each clip LPIPS and the 2D critic see: drawn for the global batch
            g = step_generator(cfg.run.seed, state.step)
            frame_idx = torch.randint(0, clips.shape[2], (tc.batch_size,), generator=g)[rank_rows()]
            noise = latent_noise(model, tc, g)
            in_gan = critics is not None and guard.active and state.step >= tc.disc_start
            set_lr(opt, tc, state.step, opts.time_budget.share(device.device) if opts.time_budget else 0.0)
            logs: dict[str, float] = {}

            # forward and backward per micro-batch (gradients sync on the last), then the critics'
            for rows, sync in grad_accumulation(ddp, micro, tc.grad_accum):
                x = unit_range(clips[rows].to(device.device, non_blocking=True))  # (B, 3, T, H, W)
                loss, parts = micro_step(forward, x, frame_idx[rows].to(device.device), tc, lpips,
                                         critics if in_gan else None, scaler, device, sync,
                                         noise.take(rows).to(device.device) if noise is not None else None)
                check_finite(float(loss.detach()), state.step, run_dir, scaler,
                             " (lower ae_train.lr or enable grad_clip)")
                for name, v in {"loss": loss, **parts}.items():
                    logs[name] = logs.get(name, 0.0) + float(v.detach()) / tc.grad_accum

            # optimizer steps (the autoencoder clipped, then the critics), one scaler update, EMA
            optimizer_step(opt, scaler, tc.grad_clip)
            if in_gan:
                critics.step(scaler, tc.disc_lr * guard.lr_scale)
            scaler.update()
            if ema:
                ema.update(model, state.step)
            state.step += 1
            pace.tick()

            # log; evaluate and watch the GAN phase; checkpoint; stop
            if due(state.step, tc.log_every, tc.steps):
                report.write(step=state.step, **logs, lr=opt.param_groups[0]["lr"], it_s=pace.it_s)
            if due(state.step, tc.eval_every, tc.steps):
                last_eval, recon = evaluate(ema.model if ema else model, test_clips, device, micro)
                report.write(step=state.step, split="test", **last_eval)
                if main:
                    write_preview(run_dir / "preview.mp4", test_clips, recon)
                    report.preview(run_dir / "preview.mp4", state.step)
                if in_gan:
                    apply_verdict(guard.check(state.step, last_eval["psnr"]), state, run_dir, report)
            if state.step % tc.ckpt_every == 0 and state.step < tc.steps:
                report.checkpoint(state.step, state.save(run_dir))
            report.progress(state.step, f"loss {logs['loss']:.4f}"
                            + (f" psnr {last_eval['psnr']:.2f}" if last_eval else "") + f" {pace.it_s:.2f} it/s")
            if stop.now(state.step):
                break

    path = state.save(run_dir)
    report.checkpoint(state.step, path)
    skipped = skipped_videos(train_set, test_set)
    return {"checkpoint": str(path), "run_dir": str(run_dir), "step": state.step, "complete": state.step >= tc.steps,
            "stopped": stop.stopped, "skipped_videos": skipped, **{f"test_{k}": v for k, v in last_eval.items()}}
