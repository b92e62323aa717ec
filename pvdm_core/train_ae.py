"""Stage 1: train the projected autoencoder (`pvdm train-ae`), one loop read top to bottom.

Losses (spec §1): L1 + LPIPS-VGG16 on one random frame per clip; from `disc_start` on, a 2D
PatchGAN on that frame and a 3D PatchGAN on the clip (hinge loss, generator -mean(logits),
feature matching). The GAN phase can diverge suddenly (the reference authors stop it by
hand): here held-out PSNR is watched, and a drop of more than `divergence_tolerance_db`
below the best of the last `divergence_window` steps rolls back to the last good checkpoint
with half the GAN learning rate; the second divergence ends the GAN phase.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from pvdm_core import distributed as dist
from pvdm_core.artifacts import AE_KIND, build_autoencoder
from pvdm_core.checkpoint import check_same_model, load_checkpoint, save_checkpoint
from pvdm_core.config import Config
from pvdm_core.data.datasets import build_dataset
from pvdm_core.device import DeviceChoice, autocast
from pvdm_core.errors import PvdmError
from pvdm_core.losses import (build_perceptual_loss, feature_matching_loss, generator_loss, hinge_d_loss,
                              l1_loss, mse_loss)
from pvdm_core.models.autoencoder import ProjectedAutoencoder
from pvdm_core.models.discriminator import PatchDiscriminator2D, PatchDiscriminator3D
from pvdm_core.progress import log
from pvdm_core.reporting import RunReporter
from pvdm_core.runs import MetricsLog
from pvdm_core.training import EMA, compiled, lr_factor, micro_batches, StepBatchSampler, StopRequest, step_generator, unwrap
from pvdm_core.video_io import to_uint8, write_video

@dataclass
class AETrainOptions:
    run_dir: Path
    device: DeviceChoice
    max_time: float | None = None  # seconds
    vgg_weights: str | None = None
    strict: bool = False


@torch.no_grad()
def evaluate(model: ProjectedAutoencoder, clips: torch.Tensor, device: DeviceChoice, batch: int) -> tuple[dict, torch.Tensor]:
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


def write_preview(path: Path, clips: torch.Tensor, recon: torch.Tensor) -> None:
    """Input | reconstruction side by side, clips stacked vertically."""
    rows = [np.concatenate([to_uint8(a), to_uint8(b)], axis=2) for a, b in zip(clips[:4], recon[:4])]
    write_video(path, np.concatenate(rows, axis=1), fps=8)


def train_autoencoder(cfg: Config, opts: AETrainOptions) -> dict[str, Any]:
    tc, device = cfg.ae_train, opts.device
    run_dir, main = opts.run_dir, dist.is_main()
    report = RunReporter(run_dir, "train-ae", tc.steps, cfg.run.tensorboard, enabled=main)
    torch.manual_seed(cfg.run.seed)

    # 1. models, optimizers; discriminators only if the GAN phase is on the schedule
    model = build_autoencoder(cfg).to(device.device)
    model.set_grad_checkpoint(tc.grad_checkpoint)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    ema = EMA(model, tc.ema_decay) if tc.ema_decay > 0 else None
    lpips = build_perceptual_loss(tc.perceptual_weight, opts.vgg_weights)
    lpips = lpips.to(device.device) if lpips is not None else None
    use_gan = 0 <= tc.disc_start < tc.steps
    if use_gan:
        disc2d = PatchDiscriminator2D(tc.disc_channels, tc.disc_layers).to(device.device)
        disc3d = PatchDiscriminator3D(tc.disc_channels, tc.disc_layers).to(device.device)
        if dist.world_size() > 1:  # batch statistics over the global batch, as one process would see
            disc2d, disc3d = map(torch.nn.SyncBatchNorm.convert_sync_batchnorm, (disc2d, disc3d))
        disc_params = [*disc2d.parameters(), *disc3d.parameters()]
        opt_d = torch.optim.AdamW(disc_params, lr=tc.disc_lr, betas=tuple(tc.betas))
    scaler = torch.amp.GradScaler(device.device.type, enabled=device.needs_grad_scaler)
    gan = {"active": use_gan, "lr_scale": 1.0, "rollbacks": 0, "history": []}  # history: (step, psnr)

    # 2. resume: the same --out continues where the last checkpoint left off
    step = 0
    if (run_dir / "latest").is_file():
        state = load_checkpoint(run_dir, AE_KIND)
        check_same_model(state, cfg, ("ae", "data.frames", "data.resolution"))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if ema:
            ema.model.load_state_dict(state["ema"])
        if use_gan and "disc2d" in state:
            disc2d.load_state_dict(state["disc2d"])
            disc3d.load_state_dict(state["disc3d"])
            opt_d.load_state_dict(state["opt_d"])
        gan = state.get("gan", gan)
        step = state["step"]
        log(f"resuming from {state['path']} at step {step}")

    def checkpoint(name: str | None = None) -> Path:
        state = {"kind": AE_KIND, "config": cfg.to_dict(), "step": step, "model": unwrap(model).state_dict(),
                 "optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "gan": gan}
        if ema:
            state["ema"] = ema.model.state_dict()
        if use_gan:
            state.update(disc2d=disc2d.state_dict(), disc3d=disc3d.state_dict(), opt_d=opt_d.state_dict())
        path = run_dir / (name or f"step-{step:07d}.pt")
        if main:
            save_checkpoint(path, state, point_latest=name is None)
            report.checkpoint(step, path)
        dist.barrier()
        return path

    # 3. data: step k's batch is a pure function of (seed, k), so resuming replays nothing
    micro = micro_batches(tc.batch_size, tc.grad_accum)
    train_set = build_dataset(cfg.data, "train", seed=cfg.run.seed, strict=opts.strict)
    test_set = build_dataset(cfg.data, "test", strict=opts.strict)
    test_clips = torch.stack([test_set[i] for i in range(min(tc.eval_clips, len(test_set)))])
    sampler = StepBatchSampler(len(train_set), tc.batch_size, cfg.run.seed, step, tc.steps)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                        pin_memory=device.device.type == "cuda", persistent_workers=False)
    ddp = DDP(model) if dist.world_size() > 1 else model
    forward = compiled(ddp, cfg.run.compile)  # ddp stays the handle for no_sync()

    # 4. the loop; the lr of step k is a function of k alone, so a resumed run follows the same schedule
    schedule = lambda k: tc.lr * lr_factor(k, tc.steps, tc.lr_schedule, tc.warmup_steps, tc.min_lr_ratio)
    schedule(step)  # an unknown schedule fails before the first step
    last_eval: dict = {}
    stop_reason = None
    t0, steps_done = time.monotonic(), 0
    with StopRequest(opts.max_time) as stop, report.live(step):
        for clips in loader:
            g = step_generator(cfg.run.seed, step)
            frame_idx = torch.randint(0, clips.shape[2], (tc.batch_size,), generator=g)
            frame_idx = frame_idx[dist.rank() :: dist.world_size()]
            in_gan = gan["active"] and step >= tc.disc_start
            for group in opt.param_groups:
                group["lr"] = schedule(step)
            logs: dict[str, float] = {}
            for k in range(tc.grad_accum):
                x = clips[k * micro : (k + 1) * micro].to(device.device, non_blocking=True)
                fi = frame_idx[k * micro : (k + 1) * micro].to(device.device)
                pick = lambda v: v[torch.arange(len(fi), device=v.device), :, fi]  # (B, 3, H, W)
                sync = k == tc.grad_accum - 1 or ddp is model
                with autocast(device), (ddp.no_sync() if not sync else torch.enable_grad()):
                    recon, _ = forward(x)
                    parts = {"l1": l1_loss(recon, x)}
                    loss = tc.l1_weight * parts["l1"]
                    if tc.mse_weight > 0:
                        parts["mse"] = mse_loss(recon, x)
                        loss = loss + tc.mse_weight * parts["mse"]
                    if lpips is not None:
                        parts["lpips"] = lpips(pick(recon), pick(x)).mean()
                        loss = loss + tc.perceptual_weight * parts["lpips"]
                    if in_gan:
                        disc2d.requires_grad_(False), disc3d.requires_grad_(False)
                        f2, feats_f2 = disc2d(pick(recon))
                        f3, feats_f3 = disc3d(recon)
                        _, feats_r2 = disc2d(pick(x))
                        _, feats_r3 = disc3d(x)
                        parts["g_adv"] = generator_loss(f2) + generator_loss(f3)
                        parts["fm"] = feature_matching_loss(feats_r2, feats_f2) + feature_matching_loss(feats_r3, feats_f3)
                        loss = loss + tc.disc_weight * parts["g_adv"] + tc.feature_match_weight * parts["fm"]
                    scaler.scale(loss / tc.grad_accum).backward()
                if not math.isfinite(float(loss.detach())):
                    raise PvdmError(f"loss became {float(loss.detach())} at step {step}; checkpoints written so far are kept "
                                    f"in {run_dir} (lower ae_train.lr or enable grad_clip)")
                for name, v in {"loss": loss, **parts}.items():
                    logs[name] = logs.get(name, 0.0) + float(v.detach()) / tc.grad_accum
                if in_gan:  # discriminator step on the same micro-batch, hinge loss
                    disc2d.requires_grad_(True), disc3d.requires_grad_(True)
                    with autocast(device):
                        r2, _ = disc2d(pick(x))
                        r3, _ = disc3d(x)
                        d2, _ = disc2d(pick(recon.detach()))
                        d3, _ = disc3d(recon.detach())
                        d_loss = hinge_d_loss(r2, d2) + hinge_d_loss(r3, d3)
                    scaler.scale(d_loss / tc.grad_accum).backward()
                    logs["d_loss"] = logs.get("d_loss", 0.0) + float(d_loss.detach()) / tc.grad_accum
            if tc.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            scaler.step(opt)
            if in_gan:
                if dist.world_size() > 1:
                    for p in disc_params:
                        if p.grad is not None:
                            dist.all_reduce_sum(p.grad).div_(dist.world_size())
                for group in opt_d.param_groups:
                    group["lr"] = tc.disc_lr * gan["lr_scale"]
                scaler.step(opt_d)
                opt_d.zero_grad(set_to_none=True)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            if ema:
                ema.update(model, step)
            step += 1
            steps_done += 1

            if step % tc.log_every == 0 or step == tc.steps:
                report.write(step=step, **logs, lr=opt.param_groups[0]["lr"], it_s=steps_done / (time.monotonic() - t0))
            if step % tc.eval_every == 0 or step == tc.steps:
                last_eval, recon = evaluate(ema.model if ema else model, test_clips, device, micro)
                report.write(step=step, split="test", **last_eval)
                if main:
                    write_preview(run_dir / "preview.mp4", test_clips, recon)
                    report.preview(run_dir / "preview.mp4", step)
                if in_gan:
                    _watch_gan(gan, step, last_eval["psnr"], tc, run_dir, report, checkpoint,
                               lambda s: _restore(s, model, opt, disc2d, disc3d, opt_d, ema))
            if step % tc.ckpt_every == 0 and step < tc.steps:
                checkpoint()
            report.progress(step, f"loss {logs['loss']:.4f}"
                            + (f" psnr {last_eval['psnr']:.2f}" if last_eval else "")
                            + f" {steps_done / (time.monotonic() - t0):.2f} it/s")
            if (stop_reason := stop.reason) is not None:
                log(f"stopping at step {step} ({stop_reason}); checkpoint saved, re-run the same command to resume")
                break

    path = checkpoint()
    skipped = len(getattr(train_set, "skipped", {})) + len(getattr(test_set, "skipped", {}))
    if skipped:
        log(f"skipped {skipped} unreadable video(s)")
    return {"checkpoint": str(path), "run_dir": str(run_dir), "step": step, "complete": step >= tc.steps,
            "stopped": stop_reason, "skipped_videos": skipped, **{f"test_{k}": v for k, v in last_eval.items()}}


def _restore(state: dict, model, opt, disc2d, disc3d, opt_d, ema) -> int:
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    disc2d.load_state_dict(state["disc2d"])
    disc3d.load_state_dict(state["disc3d"])
    opt_d.load_state_dict(state["opt_d"])
    if ema:
        ema.model.load_state_dict(state["ema"])
    return state["step"]


def _watch_gan(gan: dict, step: int, psnr: float, tc, run_dir: Path, metrics: MetricsLog | RunReporter, checkpoint,
               restore) -> None:
    """Divergence guard for the GAN phase: keep good.pt current, or roll the weights back to it."""
    window = [p for s, p in gan["history"] if s > step - tc.divergence_window]
    best = max(window, default=psnr)
    if psnr >= best - tc.divergence_tolerance_db:
        gan["history"].append((step, psnr))
        checkpoint("good.pt")  # last good state to roll back to
        return
    gan["rollbacks"] += 1
    good = load_checkpoint(run_dir / "good.pt", AE_KIND)
    back = restore(good)
    if gan["rollbacks"] >= 2:
        gan["active"] = False
        action = "GAN phase stopped"
    else:
        gan["lr_scale"] *= 0.5
        action = f"GAN learning rate scaled to {gan['lr_scale']}"
    msg = f"GAN divergence at step {step}: held-out PSNR {psnr:.2f} dB vs best {best:.2f} dB; weights rolled back to those of step {back}; {action}"
    log(msg)
    metrics.write(step=step, event="gan_divergence", psnr=psnr, best_psnr=best, rolled_back_to=back, action=action)
