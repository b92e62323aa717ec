"""`pvdm demo`: the whole method on the embedded synthetic dataset, within a time budget.

Stages, each a call of the same core functions the separate commands use:

  data             held-out videos (test seeds, never trained on) -> real/, real-32/
  judge            the shape judge, trained on real videos of its own seeds (class-conditional)
  plan             measure this machine, reserve evaluation time, budget training (plan.py)
  train-ae         the autoencoder -> ae/ (train-ae within its wall-clock budget)
  train-diffusion  the diffusion model -> dm/ (within what is left, re-measured when it starts)
  sample           generated/ (classes in turn, guided), null/ (null label), untrained/ (a step-0
                   UNet), long/ (32 frames), extended/ (held-out videos continued)
  reconstruct      recon/: the held-out videos through the autoencoder; PSNR and SSIM
  fvd              generated, reconstructions (the floor) and untrained (the ceiling) vs real
  score            the judge's share of each requested class, the clip-boundary jump (score.py)
  report           summary.json and contact_sheet.png (report.py)

`demo.json` in the folder records the settings, the plan, finished stages and the seconds each
took. Re-running the same command continues: finished stages are skipped and the training
commands resume from their checkpoints, within what is left of their time budgets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pvdm_core import __version__
from pvdm_core.artifacts.load import LoadedDiffusion, build_unet, load_autoencoder, load_diffusion
from pvdm_core.base.atomic import write_text_atomic
from pvdm_core.base.config import Config, load_config
from pvdm_core.base.distributed import run_on_local_ranks
from pvdm_core.base.device import DeviceChoice, with_amp
from pvdm_core.base.errors import BadInputError, PvdmError
from pvdm_core.base.progress import log, paused, progress_bar
from pvdm_core.data.synthetic import synthetic_video, write_synthetic_videos
from pvdm_core.io.runs import dumps, prepare_run_dir
from pvdm_core.tools.demo.plan import NUM_EXTEND, NUM_LONG, diffusion_budget, make_plan
from pvdm_core.tools.demo.report import load_average
from pvdm_core.tools.demo.state import STATE, DemoOptions, DemoRun, DemoState
from pvdm_core.training.toolbox import TimeBudget

SAMPLE_BATCH = 32  # videos sampled together: the tiny UNet is overhead-bound at small batches
# The shape judge's training: 4096 videos' frames, 900 steps, at most 4 minutes. Half that (2048,
# 600) also reaches >= 98% on held-out real videos but misreads more of the autoencoder's own
# reconstructions of them (81% against 88% right, benchmarks/RESULTS.md, "Learning"), which
# would count blur against the generator.
JUDGE_BUDGET = {"n_train": 4096, "max_steps": 900, "max_seconds": 240.0}
# On a CUDA GPU both stages train at batch 64 (a --set of the batch size wins): a step of the demo's
# tiny models launches thousands of small kernels and costs the same at batch 8 and 64 on an H200,
# and a 5-minute demo there judged 72% of its samples the class asked for at batch 64, 50% at batch
# 8 (benchmarks/RESULTS.md, "Demo on a GPU"). The CPU keeps batch 8: batch 64 costs ~8x a step there.
GPU_BATCH_OVERRIDES = ["ae_train.batch_size=64", "diffusion_train.batch_size=64"]
# Stages that train in opts.procs processes on a CPU, each at the preset's batch (why processes and
# not threads: `distributed.run_on_local_ranks`); the 30-minute demo's judge share rose from 59-62%
# in one process to 66-72% in two (benchmarks/RESULTS.md, "Demo").
ON_RANKS = ("train-ae", "train-diffusion")
BUSY_SHARE = 0.4  # a plan training for less than this share of the budget warns
LONG_SEED = 1000  # 32-frame samples use seeds 1000, 1001, ... (the FVD samples use 0 .. N-1)


class DemoInterrupted(PvdmError):
    exit_code = 130


def _stage_plan(run: DemoRun) -> dict:
    elapsed = sum(run.state.data["seconds"].values())
    plan = make_plan(run.cfg, run.opts.device, run.opts.minutes * 60, elapsed, run.opts.num_eval, SAMPLE_BATCH)
    log(f"plan: autoencoder {plan.ae_cap_s / 60:.1f} min (at most {plan.ae_steps} steps), diffusion about "
        f"{plan.diffusion_cap_s / 60:.1f} min (at most {plan.diffusion_steps} steps, re-planned when it starts), "
        f"{plan.reserve_s / 60:.1f} min kept for sampling and evaluation; measured s/step: AE "
        f"{plan.costs['ae_step']:.3f}, UNet {plan.costs['unet_step']:.3f}")
    training = plan.ae_cap_s + plan.diffusion_cap_s
    if training < BUSY_SHARE * plan.budget_s:
        # a busy machine (or a short --minutes): the timings above leave the models little to learn from
        load = load_average()
        log(f"[yellow]warning: only {training / 60:.1f} of {plan.budget_s / 60:g} min are left for training"
            + (f" (load average {load[0]:.1f} on {os.cpu_count()} cores)" if load else "")
            + "; expect weak samples, or give more --minutes or a quieter machine[/]")
    return plan.to_dict()


def _stage_data(run: DemoRun) -> dict:
    d = run.cfg.data
    first = run.test_seed(0)
    write = lambda name, num, frames, advance: write_synthetic_videos(  # noqa: E731
        run.path(name), num, frames, d.resolution, first, on_video=advance, single_shape=d.class_labels)
    with progress_bar() as bar:
        task = bar.add_task("held-out videos", total=run.opts.num_eval + NUM_EXTEND, info="test seeds")
        real = write("real", run.opts.num_eval, d.frames, lambda: bar.advance(task))
        long = write("real-32", NUM_EXTEND, 2 * d.frames, lambda: bar.advance(task))
    return {"real": str(run.path("real")), "real_32": str(run.path("real-32")), "videos": len(real) + len(long),
            "first_seed": first}


def _stage_judge(run: DemoRun) -> dict:
    """The shape judge of a class-conditional demo, trained on real videos of its own seeds."""
    from pvdm_core.evaluation.metrics.shape_judge import train_judge

    if not run.class_names:
        return {"skipped": "unconditional model"}
    d = run.cfg.data
    log("training the shape judge on real class-labelled videos (its own seeds)")
    judge = train_judge(frames=d.frames, resolution=d.resolution, seed=run.opts.seed, **JUDGE_BUDGET)
    torch.save(judge.state_dict(), run.path("judge.pt"))
    log(f"shape judge: {judge.accuracy['real']:.1%} right on held-out real videos, {judge.accuracy['any_size']:.1%} "
        f"on ones whose shape is drawn at a random size, {judge.accuracy['none']:.1%} on shapeless backgrounds")
    return {"accuracy_real": judge.accuracy["real"], "accuracy_any_size": judge.accuracy["any_size"],
            "accuracy_none": judge.accuracy["none"], "steps": judge.steps,
            "seconds": round(judge.train_seconds, 1)}


def _stopped_by_user(result: dict, stage: str, run: DemoRun) -> None:
    if result.get("stopped") in ("SIGINT", "SIGTERM"):
        raise DemoInterrupted(f"{stage} stopped by {result['stopped']} at step {result['step']}; re-run "
                              f"`pvdm demo --out {run.opts.out}` with the same options to resume")


def _cap(budget: TimeBudget) -> float:
    # StopRequest reads 0 as "no deadline": a spent budget still gets one step, then stops
    return max(1.0, budget.left_s())


def _budget(run: DemoRun, stage: str, total_s: float) -> TimeBudget:
    """The stage's wall-clock budget, continuing from what earlier runs of it spent."""
    return TimeBudget(total_s, run.state.spent(stage))


def _stage_train_ae(run: DemoRun) -> dict:
    from pvdm_core.training.train_ae import AETrainOptions, train_autoencoder

    cfg = dataclasses.replace(run.cfg, ae_train=dataclasses.replace(run.cfg.ae_train, steps=run.plan.ae_steps))
    run_dir = prepare_run_dir(run.path("ae"), cfg, "train-ae")
    budget = _budget(run, "train-ae", run.plan.ae_cap_s)
    result = run_on_local_ranks(train_autoencoder, (cfg, AETrainOptions(run_dir, run.opts.device, _cap(budget),
                                                                         time_budget=budget)), run.opts.procs)
    _stopped_by_user(result, "train-ae", run)
    return {**result, "budget_s": round(budget.total_s, 1)}


def _stage_train_diffusion(run: DemoRun) -> dict:
    from pvdm_core.training.train_diffusion import adopt_autoencoder

    if "diffusion_budget_s" not in run.state.data:  # re-planned once, when the stage first starts
        spent = sum(run.state.data["seconds"].values())
        seconds, costs = diffusion_budget(run.cfg, run.opts.device, run.plan, spent, run.opts.num_eval, SAMPLE_BATCH)
        run.state.data.update(diffusion_budget_s=round(seconds, 1), diffusion_costs=costs)
        run.state.save()
        log(f"diffusion: {seconds / 60:.1f} min left for training (measured s/step: UNet {costs['unet_step']:.3f})")
    ae = load_autoencoder(run.path("ae"), run.opts.device.device)
    steps = run.plan.diffusion_steps
    cfg = adopt_autoencoder(dataclasses.replace(run.cfg, diffusion_train=dataclasses.replace(
        run.cfg.diffusion_train, steps=steps, sample_every=steps)), ae, set())
    run_dir = prepare_run_dir(run.path("dm"), cfg, "train-diffusion")
    budget = _budget(run, "train-diffusion", run.state.data["diffusion_budget_s"])
    result = run_on_local_ranks(_train_diffusion_on, (cfg, run.path("ae"), run_dir, run.opts.device, _cap(budget),
                                                      budget), run.opts.procs)
    _stopped_by_user(result, "train-diffusion", run)
    return {**result, "budget_s": round(budget.total_s, 1)}


def _train_diffusion_on(cfg: Config, ae_dir: Path, run_dir: Path, device: DeviceChoice, max_time: float,
                        budget: TimeBudget) -> dict:
    """train_diffusion on the autoencoder in `ae_dir`, loaded here: each rank process loads its own."""
    from pvdm_core.training.train_diffusion import DiffusionTrainOptions, train_diffusion

    ae = load_autoencoder(ae_dir, device.device)
    return train_diffusion(cfg, DiffusionTrainOptions(run_dir, device, ae, None, max_time, time_budget=budget))


def untrained_model(trained: LoadedDiffusion, seed: int) -> LoadedDiffusion:
    """The ceiling: the UNet as train-diffusion initialises it (same seed), same AE and latent scale."""
    torch.manual_seed(seed)
    unet = build_unet(trained.cfg).to(next(trained.unet.parameters()).device).eval().requires_grad_(False)
    return dataclasses.replace(trained, unet=unet, path="untrained (step 0)")


def _stage_sample(run: DemoRun) -> dict:
    """generated/: the FVD and judge set (classes in turn, guided, for a class-conditional model);
    null/: the null label (unconditional); untrained/; long/: 32 frames; extended/: held-out videos
    continued (conditioned on their class too)."""
    from pvdm_core.data.labels import class_of
    from pvdm_core.generate.sample import extend_video, sample_videos

    device, n, seed = run.opts.device, run.opts.num_eval, run.opts.seed
    model = load_diffusion(run.path("dm"), device.device)
    t, opts = model.cfg.data.frames, model.cfg.sample
    classes = list(range(len(model.class_names))) or None
    untrained = untrained_model(model, model.cfg.run.seed)
    reals = run.real_videos()[:NUM_EXTEND]
    batches = math.ceil(n / SAMPLE_BATCH)
    calls = (3 if classes else 2) * batches + 2 * math.ceil(NUM_LONG / SAMPLE_BATCH) + len(reals)
    with progress_bar() as bar:
        task = bar.add_task("sample", total=calls, info=f"{opts.sampler} {opts.steps} steps, batches of clips")
        kw = {"device": device, "batch_size": SAMPLE_BATCH, "on_clip": lambda: bar.advance(task)}
        sample_videos(model, run.path("generated"), n, t, seed, opts, classes=classes, **kw)
        if classes:
            sample_videos(model, run.path("null"), n, t, seed, opts, **kw)
        sample_videos(untrained, run.path("untrained"), n, t, seed, opts, classes=classes, **kw)
        sample_videos(model, run.path("long"), NUM_LONG, 2 * t, seed + LONG_SEED, opts, classes=classes, **kw)
        for i, real in enumerate(reals):
            label = model.class_names.index(class_of(real.name)) if classes else None
            extend_video(model, real, run.path("extended") / real.name, t, seed + i, opts, device,
                         on_clip=kw["on_clip"], label=label)
    return {"generated": n, "untrained": n, "long": NUM_LONG, "extended": len(reals), "sampler": opts.sampler,
            "sampler_steps": opts.steps, "eta": opts.eta, "guidance": opts.guidance if classes else None,
            "classes": model.class_names}


def _stage_reconstruct(run: DemoRun) -> dict:
    from pvdm_core.training.encode import encode_videos
    from pvdm_core.training.train_ae import evaluate

    device = run.opts.device
    ae = load_autoencoder(run.path("ae"), device.device)
    videos = run.real_videos()
    with progress_bar() as bar:
        task = bar.add_task("reconstruct", total=len(videos), info="held-out videos through the AE")
        encode_videos(ae, videos, run.path("recon-latents.npz"), device, clips="first", reconstruct=run.path("recon"),
                      on_clip=lambda: bar.advance(task))
    # PSNR/SSIM on the exact clips (before mp4), over every held-out video, as train-ae's evaluation
    d = ae.cfg.data
    clips = torch.stack([synthetic_video(run.test_seed(i), d.frames, d.resolution, d.class_labels)
                         for i in range(len(videos))])
    metrics, _ = evaluate(ae.model, clips, device, 16)
    return {"psnr": metrics["psnr"], "ssim": metrics["ssim"], "clips": len(videos)}


def _fvd_progress(bar) -> Callable[[str, int], Callable[[int], None]]:
    def start(description: str, total: int) -> Callable[[int], None]:
        task = bar.add_task(f"FVD: I3D {description}", total=total, info="")
        return lambda n: bar.update(task, advance=n)

    return start


def _stage_fvd(run: DemoRun) -> dict:
    from pvdm_core.evaluation.fvd import FVDOptions, evaluate_fvd

    n, frames = run.opts.num_eval, run.cfg.data.frames
    stats = run.path("fvd") / "real.stats.npz"
    base = FVDOptions(num_videos=n, frames=frames)
    scores = {}
    with progress_bar() as bar:
        progress = _fvd_progress(bar)
        first = evaluate_fvd(run.path("real"), run.path("generated"), dataclasses.replace(base, save_stats_real=stats),
                             run.opts.device, progress)
        scores["generated"] = first["fvd"]
        for name, folder in (("reconstruction", "recon"), ("untrained", "untrained")):
            scores[name] = evaluate_fvd(stats, run.path(folder), base, run.opts.device, progress)["fvd"]
    return {**scores, "num_videos": n, "frames": frames, "detector": first["detector"],
            "weights_sha256": first["weights_sha256"], "resize": first["resize"], "ddof": first["ddof"]}


def _stage_score(run: DemoRun) -> dict:
    from pvdm_core.tools.demo.score import score_demo

    return score_demo(run)


def _stage_report(run: DemoRun) -> dict:
    from pvdm_core.tools.demo.report import build_summary, write_demo_sheet

    sheet = write_demo_sheet(run)
    summary = build_summary(run, sheet)
    write_text_atomic(run.path("summary.json"), json.dumps(json.loads(dumps(summary)), indent=2) + "\n")
    return {"summary": str(run.path("summary.json")), "contact_sheet": str(sheet)}


STAGES: list[tuple[str, Callable[[DemoRun], dict]]] = [
    ("data", _stage_data), ("judge", _stage_judge), ("plan", _stage_plan), ("train-ae", _stage_train_ae),
    ("train-diffusion", _stage_train_diffusion), ("sample", _stage_sample), ("reconstruct", _stage_reconstruct),
    ("fvd", _stage_fvd), ("score", _stage_score), ("report", _stage_report),
]


def default_procs(device: torch.device) -> int:
    """Training processes when --procs is not given: one per core up to 2 on a CPU (measured on 2
    cores; more processes would also grow the global batch), 1 on a GPU."""
    return min(2, os.cpu_count() or 1) if device.type == "cpu" else 1


def demo_config(preset: str, overrides: list[str], device: torch.device, procs: int = 1) -> Config:
    """The preset with the device's batch sizes, then the user's --set: GPU_BATCH_OVERRIDES on CUDA;
    on a CPU, the preset's batch in each of `procs` processes (a global batch procs times it)."""
    extra = []
    if device.type == "cuda":
        extra = GPU_BATCH_OVERRIDES
    elif procs > 1:
        base = load_config(preset)
        extra = [f"ae_train.batch_size={procs * base.ae_train.batch_size}",
                 f"diffusion_train.batch_size={procs * base.diffusion_train.batch_size}"]
    return load_config(preset, None, extra + list(overrides))


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run (or continue) every stage; returns the summary."""
    if opts.minutes <= 0:
        raise BadInputError(f"--minutes must be positive, got {opts.minutes}")
    if opts.num_eval < 2:
        raise BadInputError(f"--num-eval must be at least 2 (FVD fits a Gaussian), got {opts.num_eval}")
    procs = default_procs(opts.device.device) if opts.procs is None else opts.procs
    if procs < 1 or (procs > 1 and opts.device.device.type != "cpu"):
        raise BadInputError(f"--procs must be 1 on a GPU (several GPUs: `torchrun` the training commands) "
                            f"and at least 1 on a CPU, got {procs}")
    opts = dataclasses.replace(opts, procs=procs)
    cfg = demo_config(opts.preset, opts.overrides, opts.device.device, procs)
    if cfg.data.dataset != "synthetic":
        raise BadInputError(f"the demo runs on the embedded synthetic dataset; preset {opts.preset!r} uses {cfg.data.dataset!r}")
    opts = dataclasses.replace(opts, device=with_amp(opts.device, cfg.run.amp))  # --set run.amp: every stage
    opts.out.mkdir(parents=True, exist_ok=True)
    state = DemoState(opts.out / STATE, opts.settings())
    state.data.setdefault("load_average_start", load_average())
    state.data.setdefault("pvdm_version", __version__)
    run = DemoRun(opts, cfg, state)
    if state.done("report"):
        log(f"{opts.out} holds a finished demo; showing its results (give another --out for a new run)")
    with progress_bar() as bar:
        task = bar.add_task("demo", total=len(STAGES), info="")
        for i, (name, fn) in enumerate(STAGES):
            bar.update(task, completed=i, description=f"demo {i + 1}/{len(STAGES)}: {name}",
                       info=f"{sum(state.data['seconds'].values()) / 60:.1f} of {opts.minutes:g} min")
            if state.done(name):
                continue
            t0 = time.monotonic()
            try:
                with paused(bar) if name in ON_RANKS and procs > 1 else contextlib.nullcontext():
                    result = fn(run)
            finally:
                state.add_time(name, time.monotonic() - t0)
            state.finish(name, result)
        bar.update(task, completed=len(STAGES), description="demo: done", info="")
    return json.loads(run.path("summary.json").read_text())

