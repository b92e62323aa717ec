"""Stage 2: train the latent diffusion UNet (`pvdm train-diffusion`), one loop top to bottom.

Data are latents: from `pvdm encode` (--latents, the fast path) or, without it, the AE's
training split encoded once at start-up (one 2T-frame window per video, split into two
consecutive clips). Joint training (spec §2): with probability lambda = cond_prob an example
predicts clip k+1's noise conditioned on clip k's clean latents, else unconditionally; only
clips whose predecessor is in the data can be conditioned. A class-conditional model
(`unet.num_classes`, `data.class_labels`) also sees each clip's class label, replaced by the null
label with probability `diffusion.label_dropout`, so that one model learns both branches of
classifier-free guidance.

Where this loop departs from the public release, deliberately, and the `--set` that switches back:
- conditioning drawn per example (`diffusion.cond_draw: example`); the release draws once per
  iteration for the whole batch (`batch`), which gives the same expectation with more variance;
- bf16 autocast on CUDA (`run.amp: auto`); the release trains the UNet in fp32 (`run.amp: off`);
- latents cached once (`pvdm encode`, or the training split encoded at start-up) instead of
  re-encoded every step; an unconditional example is a cached clip, where the release takes a
  random 16-frame window of its 32-frame clip (no switch: the cache holds whole clips only);
- the EMA is updated every `diffusion_train.ema_every` steps (25 in the reference presets, as the
  release; 1 in `tiny`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from pvdm_core.artifacts.load import DIFFUSION_KIND, LoadedAE, LoadedDiffusion, build_unet, count_parameters
from pvdm_core.base import distributed as dist
from pvdm_core.base.config import Config
from pvdm_core.base.device import DeviceChoice, autocast
from pvdm_core.base.errors import BadInputError
from pvdm_core.base.progress import log, progress_bar
from pvdm_core.data.datasets import build_dataset
from pvdm_core.data.labels import label_indices
from pvdm_core.diffusion.planes import plane_std, scale_planes
from pvdm_core.diffusion.process import NoiseSchedule, diffusion_loss, draw_cond_mask, draw_label_drop, draw_timesteps
from pvdm_core.evaluation.fvd.tracking import training_fvd
from pvdm_core.generate.sample import sample_videos
from pvdm_core.models.autoencoder import Latents
from pvdm_core.training.encode import LatentSet, load_latents
from pvdm_core.training.reporting import RunReporter
from pvdm_core.training.toolbox import (EMA, Pace, StepBatchSampler, StopRequest, TimeBudget, TrainState, check_finite,
                                        due, grad_accumulation, grad_scaler, latest_checkpoint, micro_batches,
                                        optimizer_step, rank_rows, set_lr, step_generator, wrap_for_training)


@dataclass
class DiffusionTrainOptions:
    run_dir: Path
    device: DeviceChoice
    ae: LoadedAE
    latents: Path | None = None
    max_time: float | None = None  # seconds
    strict: bool = False
    time_budget: TimeBudget | None = None  # the lr schedule follows the clock too (`pvdm demo`)


class LatentPairs(torch.utils.data.Dataset):
    """Item i: (z of clip i, z of its predecessor or zeros, has_predecessor, class label or -1)."""

    def __init__(self, latents: LatentSet):
        self.z = latents.z
        nxt = latents.next_clip_index()
        self.prev = np.full(len(latents), -1)
        self.prev[nxt[nxt >= 0]] = np.nonzero(nxt >= 0)[0]
        self.label = latents.label if latents.label is not None else np.full(len(latents), -1)

    def __len__(self) -> int:
        return len(self.prev)

    def __getitem__(self, i: int) -> tuple[Latents, Latents, bool, int]:
        p = int(self.prev[i])
        z = Latents(*(plane[i] for plane in self.z))
        z_prev = Latents(*(plane[p] for plane in self.z)) if p >= 0 else z.map(torch.zeros_like)
        return z, z_prev, p >= 0, int(self.label[i])


@torch.no_grad()
def encode_dataset(ae: LoadedAE, cfg: Config, device: DeviceChoice, strict: bool, batch: int = 16) -> LatentSet:
    """The AE's training split as consecutive clip pairs (one 2T window per video), in memory."""
    d = ae.cfg.data
    dataset = build_dataset(cfg.data, "train", frames=2 * d.frames, seed=cfg.run.seed, strict=strict)
    parts, sources, starts = [], [], []
    with progress_bar(disable=not dist.is_main()) as bar:
        task = bar.add_task("encode train split", total=len(dataset), info="")
        for i in range(0, len(dataset), batch):
            idx = range(i, min(i + batch, len(dataset)))
            clips = torch.stack([dataset[j] for j in idx]).to(device.device)  # (B, 3, 2T, H, W)
            halves = torch.cat([clips[:, :, : d.frames], clips[:, :, d.frames :]])  # (2B, 3, T, H, W)
            with autocast(device):
                parts.append(ae.model.encode(halves).float().to("cpu"))
            names = [dataset.name(j) if hasattr(dataset, "name") else str(j) for j in idx]
            sources += names + names
            starts += [0] * len(idx) + [d.frames * d.frame_stride] * len(idx)
            bar.advance(task, len(idx))
    labels, names = label_indices(sources) if cfg.data.class_labels else (None, [])
    return LatentSet(Latents.cat(parts), np.array(sources), np.array(starts), ae.ae_hash, d.frames, d.frame_stride,
                     np.array(labels) if labels is not None else None, names)


AE_OWNED = ("ae", "data")  # config sections the autoencoder defines for train-diffusion
LOCATION = ("data.dataset", "data.root")  # where the videos are: the user's when given
DIFFUSION_OWNED = ("data.class_labels",)  # data.* keys of the diffusion model: always this command's


def adopt_autoencoder(cfg: Config, ae: LoadedAE, given: set[str]) -> Config:
    """The AE defines the latent space: train-diffusion takes its ae.* and data.* settings.

    A setting among those the user gave (`given`, from --config or --set) that differs from the
    AE's is refused, never replaced; the dataset location (--data, data.dataset, data.root) is
    the user's when given, else the AE's; data.class_labels is always this command's.
    """
    mine, theirs = cfg.to_dict(), ae.cfg.to_dict()
    for key in sorted(given - set(LOCATION) - set(DIFFUSION_OWNED)):
        section, _, name = key.partition(".")
        if section in AE_OWNED and mine[section][name] != theirs[section][name]:
            raise BadInputError(f"{key}={mine[section][name]!r} conflicts with the autoencoder's {key}="
                                f"{theirs[section][name]!r} ({ae.path}): train-diffusion takes ae.* and data.* "
                                f"from the autoencoder; drop the setting or train another autoencoder")
    keep = (given & set(LOCATION)) | set(DIFFUSION_OWNED)
    location = {key.split(".")[1]: getattr(cfg.data, key.split(".")[1]) for key in keep}
    return dataclasses.replace(cfg, ae=ae.cfg.ae, data=dataclasses.replace(ae.cfg.data, **location))


def check_class_labels(cfg: Config, latents: LatentSet, where: str) -> None:
    """A class-conditional model needs labelled data whose class count it was built for."""
    names, n = latents.class_names, cfg.unet.num_classes
    if not cfg.data.class_labels:
        if n:
            raise BadInputError(f"unet.num_classes={n} needs class labels: --set data.class_labels=true")
        return
    if latents.label is None:
        raise BadInputError(f"the latents at {where} hold no class labels: encode them with `pvdm encode --class-labels`")
    if n != len(names):
        raise BadInputError(f"the data has {len(names)} classes ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); "
                            f"build the model for them with --set unet.num_classes={len(names)} (got {n})")
    if not 0 <= cfg.diffusion.label_dropout < 1:
        raise BadInputError(f"diffusion.label_dropout must be in [0, 1), got {cfg.diffusion.label_dropout}")


def collate(items: list[tuple[Latents, Latents, bool, int]]) -> tuple[Latents, Latents, torch.Tensor, torch.Tensor]:
    z = Latents(*(torch.stack(p) for p in zip(*(it[0] for it in items))))
    z_prev = Latents(*(torch.stack(p) for p in zip(*(it[1] for it in items))))
    return z, z_prev, torch.tensor([it[2] for it in items]), torch.tensor([it[3] for it in items], dtype=torch.long)


def noisy_condition(z_prev: Latents, sigma: float, g: torch.Generator, global_batch: int, mine: slice) -> Latents:
    """This rank's previous-clip latents plus N(0, sigma^2) noise drawn for the global batch
    (`diffusion.cond_noise`; the latents are in units of their std)."""
    return Latents(*(p + sigma * torch.randn((global_batch, *p.shape[1:]), generator=g)[mine] for p in z_prev))


def training_latents(cfg: Config, opts: DiffusionTrainOptions, latent_std: tuple[float, ...] | None
                     ) -> tuple[LatentPairs, tuple[float, ...], list[str]]:
    """The latents in memory (cached, or the AE's training split encoded now), scaled by their
    per-plane std (measured here unless a resumed run has it; all 1 without scale_latents), and
    the class names by label index (empty: unconditional)."""
    latents = (load_latents(opts.latents, opts.ae.ae_hash) if opts.latents
               else encode_dataset(opts.ae, cfg, opts.device, opts.strict))
    check_class_labels(cfg, latents, str(opts.latents or "the training split"))
    if latent_std is None:
        latent_std = plane_std(latents.z) if cfg.diffusion.scale_latents else (1.0,) * len(latents.z)
    latents = dataclasses.replace(latents, z=Latents(*scale_planes(latents.z, [1.0 / s for s in latent_std])))
    pairs = LatentPairs(latents)
    if not (pairs.prev >= 0).any() and cfg.diffusion.cond_prob > 0:
        log("[yellow]warning: the latents hold no consecutive clips, so the model will not learn to continue "
            "videos (sampling more than one clip needs that); encode with `pvdm encode --clips all`[/]")
    return pairs, latent_std, list(latents.class_names) if cfg.data.class_labels else []


def step_draws(cfg: Config, schedule: NoiseSchedule, step: int, z: Latents, z_prev: Latents, has_prev: torch.Tensor,
               label: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, Latents, torch.Tensor | None, Latents]:
    """Step `step`'s random draws, a function of (seed, step): timesteps, the condition mask (rows
    without a previous clip never conditioned), noise, labels with dropped ones set to -1 (None for
    unconditional models) and the previous clip, noised when diffusion.cond_noise > 0. Drawn for
    the whole global batch, then this rank's rows are taken: the same batch for any world size."""
    tc = cfg.diffusion_train
    g = step_generator(cfg.run.seed, step)
    t_all = draw_timesteps(tc.batch_size, schedule, g)
    mask_all = draw_cond_mask(tc.batch_size, cfg.diffusion.cond_prob, g, per_batch=cfg.diffusion.cond_draw == "batch")
    noise_all = Latents(*(torch.randn((tc.batch_size, *p.shape[1:]), generator=g) for p in z))
    mine = rank_rows()
    # drawn last and only by class-conditional models: unconditional runs draw as before
    if label is not None:
        label = torch.where(draw_label_drop(tc.batch_size, cfg.diffusion.label_dropout, g)[mine], -1, label)
    if cfg.diffusion.cond_noise > 0:  # drawn after everything else: runs without it draw as before
        z_prev = noisy_condition(z_prev, cfg.diffusion.cond_noise, g, tc.batch_size, mine)
    return t_all[mine], mask_all[mine] & has_prev, noise_all.take(mine), label, z_prev


def train_diffusion(cfg: Config, opts: DiffusionTrainOptions) -> dict[str, Any]:
    tc, device, run_dir = cfg.diffusion_train, opts.device, opts.run_dir
    main = dist.is_main()
    report = RunReporter(run_dir, "train-diffusion", tc.steps, cfg.run.tensorboard, enabled=main)
    schedule = NoiseSchedule.from_config(cfg.diffusion)
    fvd = training_fvd(tc, device, load=main)  # before anything slow: bad settings fail now, on every rank
    torch.manual_seed(cfg.run.seed)

    # 1. model, EMA, optimizer
    model = build_unet(cfg).to(device.device)
    ema = EMA(model, tc.ema_decay, tc.ema_every)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scaler = grad_scaler(device)
    state = TrainState({"kind": DIFFUSION_KIND, "config": cfg.to_dict(), "ae_path": str(Path(opts.ae.path).resolve()),
                        "ae_hash": opts.ae.ae_hash}, cfg.run.keep_checkpoints,
                       model=model, ema=ema, optimizer=opt, scaler=scaler)

    # 2. resume from the same --out, trained on the same autoencoder
    saved = latest_checkpoint(run_dir, DIFFUSION_KIND, cfg, ("unet", "ae", "data.frames", "data.resolution"))
    if saved is not None:
        if "optimizer" not in saved:
            raise BadInputError(f"{run_dir} holds converted release weights, not a training run; use another --out")
        if saved["ae_hash"] != opts.ae.ae_hash:
            raise BadInputError(f"{run_dir} was trained on another autoencoder (ae_hash {saved['ae_hash']})")
        state.load_state_dict(saved)
        if main:
            log(f"resuming from {saved['path']} at step {state.step}")

    # 3. latents in memory; step k's batch, noise, t, condition mask and label drops are functions of (seed, k)
    pairs, latent_std, class_names = training_latents(cfg, opts, tuple(saved["latent_std"]) if saved else None)
    if saved is not None and saved.get("class_names", []) != class_names:
        raise BadInputError(f"{run_dir} was trained on other classes ({', '.join(saved['class_names']) or 'none'})")
    state.meta.update(latent_std=list(latent_std), **({"class_names": class_names} if class_names else {}))
    n_pairs = int((pairs.prev >= 0).sum())
    micro = micro_batches(tc.batch_size, tc.grad_accum)
    sampler = StepBatchSampler(len(pairs), tc.batch_size, cfg.run.seed, state.step, tc.steps)
    loader = DataLoader(pairs, batch_sampler=sampler, collate_fn=collate)
    ddp, forward = wrap_for_training(model, cfg.run.compile)
    preview = LoadedDiffusion(ema.model, opts.ae, cfg, schedule, str(run_dir), latent_std, class_names)
    if main:
        log(f"{len(pairs)} clips, {n_pairs} with a previous clip; UNet {count_parameters(model):,} "
            f"parameters; latent std per plane {', '.join(f'{s:.3f}' for s in latent_std)}")

    # 4. the loop
    first_loss, loss_avg = None, None
    pace = Pace()
    with StopRequest(opts.max_time, device.device) as stop, report.live(state.step):
        if fvd is not None and state.step == 0:  # the untrained model: where the FVD curve starts
            report.write(step=0, split="test", fvd=fvd(preview, cfg.sample, cfg.run.seed))
        for z, z_prev, has_prev, label in loader:
            t_mine, mask_mine, noise_mine, label_mine, z_prev = step_draws(cfg, schedule, state.step, z, z_prev,
                                                                           has_prev, label if class_names else None)

            # forward and backward per micro-batch; gradients sync on the last
            set_lr(opt, tc, state.step, opts.time_budget.share(device.device) if opts.time_budget else 0.0)
            loss_sum = 0.0
            for rows, sync in grad_accumulation(ddp, micro, tc.grad_accum):
                to_dev = lambda planes: planes.take(rows).to(device.device, non_blocking=True)
                with autocast(device), sync:
                    loss = diffusion_loss(forward, to_dev(z), to_dev(z_prev), t_mine[rows].to(device.device),
                                          to_dev(noise_mine), mask_mine[rows], schedule, cfg.diffusion.prediction,
                                          label_mine[rows].to(device.device) if class_names else None,
                                          cfg.diffusion.min_snr_gamma, cfg.diffusion.plane_loss_weights)
                    scaler.scale(loss / tc.grad_accum).backward()
                loss_sum += float(loss.detach()) / tc.grad_accum
            check_finite(loss_sum, state.step, run_dir, scaler)

            # optimizer step, EMA
            optimizer_step(opt, scaler, tc.grad_clip)
            scaler.update()
            ema.update(model, state.step)
            state.step += 1
            pace.tick()
            first_loss = loss_sum if first_loss is None else first_loss
            loss_avg = loss_sum if loss_avg is None else 0.98 * loss_avg + 0.02 * loss_sum

            # log, preview, checkpoint, stop
            if due(state.step, tc.log_every, tc.steps):
                report.write(step=state.step, loss=loss_sum, loss_ema=loss_avg, lr=opt.param_groups[0]["lr"],
                             it_s=pace.it_s)
            if main and due(state.step, tc.sample_every, tc.steps):
                sample_videos(preview, run_dir / "preview.mp4", 1, 2 * cfg.data.frames, cfg.run.seed,
                              cfg.sample, device)
                report.preview(run_dir / "preview.mp4", state.step)
            if fvd is not None and due(state.step, tc.fvd_every, tc.steps):
                report.write(step=state.step, split="test", fvd=fvd(preview, cfg.sample, cfg.run.seed))
            if state.step % tc.ckpt_every == 0 and state.step < tc.steps:
                report.checkpoint(state.step, state.save(run_dir))
            report.progress(state.step, f"loss {loss_avg:.4f} {pace.it_s:.2f} it/s")
            if stop.now(state.step):
                break

    path = state.save(run_dir)
    report.checkpoint(state.step, path)
    return {"checkpoint": str(path), "run_dir": str(run_dir), "step": state.step, "complete": state.step >= tc.steps,
            "stopped": stop.stopped, "first_loss": first_loss, "loss_ema": loss_avg, "clips": len(pairs),
            "clips_with_previous": n_pairs, **({"class_names": class_names} if class_names else {})}
