"""What `pvdm demo` leaves to look at: summary.json and contact_sheet.png.

The summary holds every number a reader needs to judge the run (PSNR, SSIM, the three FVDs,
steps, seconds per stage, the machine and its load, the settings); the contact sheet shows each
stage's output as rows of frames, so one look tells what the autoencoder keeps, what the
diffusion model makes, and how it continues a clip.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pvdm_core.artifacts.load import count_parameters, load_autoencoder, load_diffusion
from pvdm_core.evaluation.metrics.shape_judge import NONE
from pvdm_core.io.contact_sheet import SheetRow, write_contact_sheet
from pvdm_core.io.video_io import read_video
from pvdm_core.tools.demo.state import DemoRun

# Targets, each about the generated videos, so none reads "met" for an untrained model
# (issue 24; FVD at 32 px does not see shapes, so it is reported, not targeted):
TARGET_JUDGE_SHARE = 0.9  # class-conditional samples judged the class asked for
TARGET_BOUNDARY_RATIO = 2.0  # clip-boundary jump / in-clip change, for long samples that are shapes
TARGET_BUDGET_USE = 0.85  # share of --minutes used unless every step cap was reached
# A run below ENOUGH_SHARE of the training clips the recipe's models see (the 30-minute CPU run of
# benchmarks/RESULTS.md, "Demo", in two processes: these steps at a global batch of 16) trained too
# little for its samples to mean much, and says so (a 15-minute run, 22 k diffusion clips, was judged
# right in 34%). Clips, not steps: a GPU run at batch 64 learns from 4x the clips a step.
RECIPE_MINUTES, RECIPE_AE_STEPS, RECIPE_DM_STEPS, RECIPE_BATCH = 30.0, 2500, 2900, 16
ENOUGH_SHARE = 0.5
SHEET_PAIRS = 2  # held-out real / reconstruction pairs on the sheet
SHEET_GENERATED = 3  # 16-frame samples on the sheet
SHEET_EVERY = 2  # the sheet shows every 2nd frame of a row


def _sample_row(label: str, folder: Path, pick: list[int], frame: int, new_group: bool = False) -> list[SheetRow]:
    """One frame of each of several samples side by side: a row that shows what a class looks
    like (none when there are no such samples). Each frame is given twice, as the sheet shows
    every 2nd frame of a row."""
    paths = sorted(folder.glob("*.mp4"))
    frames = [read_video(paths[i])[frame] for i in pick if i < len(paths)]
    return [SheetRow(label, np.repeat(np.stack(frames), SHEET_EVERY, axis=0), new_group=new_group)] if frames else []


def _class_rows(run: DemoRun, columns: int) -> list[SheetRow]:
    """Per class, frame T/2 of its first samples; then the null label's."""
    names, scores, frame = run.class_names, run.state.result("score")["judge"], run.cfg.data.frames // 2
    guidance = run.state.result("sample")["guidance"]
    rows = []
    for c, name in enumerate(names):
        pick = [c + len(names) * k for k in range(columns)]  # sample i has class i mod K
        share = scores["generated"]["per_class"].get(name, 0.0)
        label = f"Generated: {name}\nguidance {guidance:g}, frame {frame} of {columns} samples\njudged {name}: {share:.0%}"
        rows += _sample_row(label, run.path("generated"), pick, frame, new_group=c == 0)
    shares = scores["null_label_classes"]
    null = " / ".join(f"{n[:3]} {shares[n]:.0%}" for n in names)
    null += f"\nno shape (none): {shares[NONE]:.0%}" if NONE in shares else ""
    rows += _sample_row(f"Unconditional (null label)\nframe {frame} of {columns} samples\njudged: {null}",
                        run.path("null"), list(range(columns)), frame)
    return rows


def sheet_rows(run: DemoRun) -> list[SheetRow]:
    """The contact sheet's rows, top to bottom: autoencoder, samples (per class for a class-
    conditional model), 32 frames, extension, ceiling."""
    frames = run.cfg.data.frames
    reals, rec = run.real_videos(), run.state.result("reconstruct")
    columns = -(-frames // 2)  # as many samples as a time row shows frames
    rows = []
    for i, real in enumerate(reals[:SHEET_PAIRS]):
        recon = run.path("recon") / f"{real.stem}_{0:06d}.mp4"
        rows.append(SheetRow(f"Held-out real {i + 1}\nseed {run.test_seed(i)}, never trained on", read_video(real), new_group=i == 0))
        rows.append(SheetRow(f"AE reconstruction {i + 1}\nheld-out PSNR {rec['psnr']:.1f} dB\n(mean of {rec['clips']} clips)", read_video(recon)))
    if run.class_names:
        rows += _class_rows(run, columns)
    else:
        generated = sorted(run.path("generated").glob("*.mp4"))[:SHEET_GENERATED]
        for i, path in enumerate(generated):
            rows.append(SheetRow(f"Generated {i + 1}\n{frames} frames from noise\nseed {run.opts.seed + i}", read_video(path), new_group=i == 0))
    jump = run.state.result("score")["boundary"]
    for path in sorted(run.path("long").glob("*.mp4"))[:1]:
        ratio = f"{jump['ratio']:.1f}x" if jump["ratio"] is not None else "n/a:"
        floor = floor_ratio(jump)
        alone = f"\n(the AE alone: {floor:.1f}x)" if floor is not None else ""
        rows.append(SheetRow(f"Generated, 32 frames\nclip 2 (orange) continues clip 1\nboundary jump {ratio} "
                             f"the in-clip change{alone}", read_video(path), generated_from=frames, new_group=True))
    for path in sorted(run.path("extended").glob("*.mp4"))[:1]:
        truth = run.path("real-32") / path.name
        rows.append(SheetRow("Held-out real, 32 frames\nthe true continuation", read_video(truth), new_group=True))
        rows.append(SheetRow(f"Extended real\nreal frames 0-{frames - 1}, then\n{frames} generated (orange)", read_video(path), generated_from=frames))
    untrained = sorted(run.path("untrained").glob("*.mp4"))[:1]
    for path in untrained:
        rows.append(SheetRow("Untrained model\nstep-0 UNet, same AE:\nthe FVD ceiling", read_video(path), new_group=True))
    return rows


def write_demo_sheet(run: DemoRun) -> Path:
    fvd, rec, judge = run.state.result("fvd"), run.state.result("reconstruct"), run.state.result("score").get("judge")
    ae, dm = run.state.result("train-ae"), run.state.result("train-diffusion")
    minutes, px = sum(run.state.data["seconds"].values()) / 60, run.cfg.data.resolution
    shapes = (f"samples judged the class asked for: {judge['generated']['share']:.0%} (AE reconstructions "
              f"{judge['reconstructed']['share']:.0%}; judge {run.state.result('judge')['accuracy_real']:.0%} "
              f"right on real videos); " if judge else "")
    title = (f"pvdm demo: {shapes}held-out AE PSNR {rec['psnr']:.1f} dB; FVD{fvd['frames']} generated "
             f"{fvd['generated']:.0f}, AE floor {fvd['reconstruction']:.0f}, untrained {fvd['untrained']:.0f}")
    verdict = training_verdict(run)
    subtitle = (f"Autoencoder {ae['step']} steps, diffusion {dm['step']} steps, {minutes:.1f} min on "
                f"{run.opts.device.device.type}. " + (f"WARNING: {verdict['note']}. " if not verdict["enough"] else "")
                + f"Every 2nd frame, {px}x{px} px shown at 3x. Orange: frames generated after, and conditioned on, "
                "the frames to their left.")
    return write_contact_sheet(run.path("contact_sheet.png"), sheet_rows(run), title, subtitle, every=SHEET_EVERY)


def floor_ratio(boundary: dict) -> float | None:
    """The autoencoder's own jump (score.py); None in a folder scored before it was measured."""
    return (boundary.get("autoencoder_floor") or {}).get("ratio")


def _target(value: float | None, target: float, higher_is_better: bool, why_not: str = "") -> dict:
    met = value is not None and not why_not and (value >= target if higher_is_better else value <= target)
    return {"value": value, "target": target, "met": bool(met), **({"not_met_because": why_not} if why_not else {})}


def training_verdict(run: DemoRun) -> dict:
    """Whether the models trained enough for their samples to mean much: the training clips each
    model saw (steps x global batch) against the recipe's."""
    ae, dm = run.state.result("train-ae")["step"], run.state.result("train-diffusion")["step"]
    ae_batch, dm_batch = run.cfg.ae_train.batch_size, run.cfg.diffusion_train.batch_size
    ae_clips, dm_clips = ae * ae_batch, dm * dm_batch
    need_ae = min(run.plan.ae_steps * ae_batch, int(ENOUGH_SHARE * RECIPE_AE_STEPS * RECIPE_BATCH))
    need_dm = min(run.plan.diffusion_steps * dm_batch, int(ENOUGH_SHARE * RECIPE_DM_STEPS * RECIPE_BATCH))
    enough = ae_clips >= need_ae and dm_clips >= need_dm
    note = "" if enough else (
        f"trained too little: {ae} autoencoder steps of {ae_batch} clips and {dm} diffusion steps of {dm_batch}, "
        f"where the recipe's {RECIPE_MINUTES:g}-minute run trains {RECIPE_AE_STEPS} and {RECIPE_DM_STEPS} steps of "
        f"{RECIPE_BATCH}; expect weak samples (a busy machine or a short --minutes)")
    return {"enough": enough, "autoencoder_steps": ae, "diffusion_steps": dm, "autoencoder_clips": ae_clips,
            "diffusion_clips": dm_clips, "recipe_steps": [RECIPE_AE_STEPS, RECIPE_DM_STEPS],
            "recipe_batch": RECIPE_BATCH, **({"note": note} if note else {})}


def judge_share_target(judge: dict) -> dict:
    """The share of samples judged the class asked for, against the target. A perfect diffusion
    model draws latents as real videos have them, so its samples would be judged as the
    autoencoder's reconstructions of held-out videos are: when those fall short of the target
    too, a missed target says so (on the spinning class set before stop 36 the 30-minute demo's
    autoencoder reached 69-75% at every checkpoint, benchmarks/RESULTS.md "Learning" 9; on the
    upright set 97-100%, "Learning" 10). A share that meets the target is never marked missed for it."""
    share, ceiling = judge["generated"]["share"], judge["reconstructed"]["share"]
    why = (f"the autoencoder's reconstructions of held-out videos, what a perfect diffusion model's samples would be, "
           f"are judged right in only {ceiling:.0%}" if share < TARGET_JUDGE_SHARE and ceiling < TARGET_JUDGE_SHARE else "")
    return {**_target(share, TARGET_JUDGE_SHARE, True, why), "autoencoder_ceiling": ceiling}


def targets(run: DemoRun, total_s: float) -> dict:
    score = run.state.result("score")
    judge = score.get("judge")
    ae, dm = run.state.result("train-ae"), run.state.result("train-diffusion")
    capped = ae["complete"] and dm["complete"]
    out = {"budget_used": _target(round(total_s / (run.opts.minutes * 60), 3), TARGET_BUDGET_USE, True,
                                  "every step cap was reached first" if capped else "")}
    if judge is None:
        return out
    out["judge_share_requested_class"] = judge_share_target(judge)
    shapes = judge["long"]["share"] >= TARGET_JUDGE_SHARE
    floor = floor_ratio(score["boundary"])
    notes = ([] if shapes else [f"the long samples are judged their class in only {judge['long']['share']:.0%}: no shapes to continue"]) \
        + ([f"the autoencoder alone jumps {floor:.1f}x (each clip decoded on its own): no model goes below it"]
           if floor is not None and floor > TARGET_BOUNDARY_RATIO else [])
    out["boundary_jump_ratio"] = _target(score["boundary"]["ratio"], TARGET_BOUNDARY_RATIO, False, "; ".join(notes))
    return out


def build_summary(run: DemoRun, sheet: Path) -> dict[str, Any]:
    """Everything summary.json holds; times are summed over all runs of the same folder."""
    state, opts, device = run.state, run.opts, run.opts.device
    ae, dm, rec, fvd = (state.result(s) for s in ("train-ae", "train-diffusion", "reconstruct", "fvd"))
    plan, smp = state.result("plan"), state.result("sample")
    seconds = dict(state.data["seconds"])
    total = sum(seconds.values())
    ae_model = load_autoencoder(run.path("ae"), torch.device("cpu"))
    unet = load_diffusion(run.path("dm"), torch.device("cpu")).unet
    tc, dc = run.cfg.ae_train, run.cfg.diffusion_train
    ratio = fvd["generated"] / fvd["reconstruction"] if fvd["reconstruction"] else None
    return {
        "pvdm_version": state.data.get("pvdm_version"),
        "settings": opts.settings(),
        "device": str(device.device), "device_reason": device.reason, "precision": device.precision,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "budget_minutes": opts.minutes, "minutes": round(total / 60, 2), "within_budget": total <= opts.minutes * 60,
        "seconds": seconds,
        "load_average": {"start": state.data.get("load_average_start"), "end": load_average()},
        "plan": plan,
        "autoencoder": {
            "steps": ae["step"], "step_cap": plan["ae_steps"], "budget_s": ae.get("budget_s"), "complete": ae["complete"],
            "stopped": ae["stopped"],
            "heldout_psnr_db": rec["psnr"], "heldout_ssim": rec["ssim"], "heldout_clips": rec["clips"],
            "parameters": count_parameters(ae_model.model), "architecture": dataclasses.asdict(ae_model.cfg.ae),
            "training": {"batch_size": tc.batch_size, "lr": tc.lr, "lr_schedule": tc.lr_schedule,
                         "warmup_steps": tc.warmup_steps, "min_lr_ratio": tc.min_lr_ratio, "betas": tc.betas},
        },
        "diffusion": {
            "steps": dm["step"], "step_cap": plan["diffusion_steps"], "budget_s": dm.get("budget_s"), "complete": dm["complete"],
            "stopped": dm["stopped"], "first_loss": dm["first_loss"], "final_loss": dm["loss_ema"],
            "parameters": count_parameters(unet), "unet": dataclasses.asdict(run.cfg.unet),
            "training": {"batch_size": dc.batch_size, "lr": dc.lr, "lr_schedule": dc.lr_schedule, "ema_decay": dc.ema_decay},
            "sampler": {k: smp[k] for k in ("sampler", "sampler_steps", "eta")},
        },
        "fvd": {**fvd, "generated_over_floor": ratio},
        "judge": {**state.result("judge"), **state.result("score").get("judge", {})},
        "boundary": state.result("score")["boundary"],
        "training": training_verdict(run),
        "targets": targets(run, total),
        "paths": {name: str(run.path(name)) for name in
                  ("ae", "dm", "real", "real-32", "recon", "generated", "null", "untrained", "long", "extended")}
                 | {"contact_sheet": str(sheet), "summary": str(run.path("summary.json"))},
    }


def load_average() -> list[float] | None:
    """1/5/15-minute load averages (the machine may be shared: timings depend on it)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
