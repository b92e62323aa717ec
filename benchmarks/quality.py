"""Quality benchmark: the tiny preset end to end on the synthetic dataset, scored by FVD.

    python benchmarks/quality.py [--budget-minutes 15] [--out DIR] [--num 64] [--no-record]

Runs the real user path (the `pvdm` CLI, one subprocess per command) within a fixed budget:

1. `pvdm train-ae --preset tiny`, then `pvdm train-diffusion --preset tiny` on it, each with a
   `--max-time` share of the budget (the preset's step counts are the target; the caps only
   bite on a slow or loaded machine, and the steps actually done are reported);
2. `pvdm synth real/ --num 64` (held-out test seeds, never seen in training);
3. three sets of 64 16-frame videos scored against the same real statistics (I3D features of
   the real videos are computed once, saved with --save-stats-real and reused):
   - generated: `pvdm sample --num 64` from the trained model (fixed seed);
   - reconstructions (the floor): `pvdm encode --reconstruct` of the 64 real videos;
   - untrained (the ceiling): samples from a diffusion model of step 0 (`--steps 0`) on the
     same autoencoder, same seed and sampler.

Prints a table and writes the "## Quality" section of benchmarks/RESULTS.md (other sections
are kept). FVD uses the real Kinetics-400 I3D (`pvdm eval-fvd`, center-crop to 224, ddof 1).
With 64 videos per side FVD is biased upwards and only comparable within this table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
sys.path.insert(0, str(ROOT / "benchmarks"))
from reporting import cpu_model, load_avg, pvdm, read_metrics, replace_section  # noqa: E402
SECTION = "## Quality"

# Seconds kept back from training for everything after it, scaled with --num. Measured on 2
# free cores (2026-11-26): 417 s for 64 videos (I3D on 4 x 64 clips ~290 s, sampling twice
# ~100 s, synth, encode and process start-up ~30 s), i.e. 6.5 s per video; 7 leaves a margin.
EVAL_RESERVE_S_PER_VIDEO = 7.0
UNTRAINED_RUN_S = 25  # the step-0 diffusion run encodes the training split once
AE_SHARE = 0.4  # of the training budget; the diffusion model gets the rest


def section_lines(args: argparse.Namespace, started: dt.datetime, summary: dict, rows: list[tuple[str, float, str]],
                  fvd_generated: dict, loads: tuple[str, str]) -> list[str]:
    """The Quality section of RESULTS.md for one run (summary: what quality.json holds)."""
    from pvdm_core.base.config import load_config

    ae, dm, total, t_train, psnr = summary["ae"], summary["diffusion"], summary["total_s"], summary["train_s"], summary["psnr_curve"]
    over, log, (load_before, load_after) = summary["over_budget"], summary["commands"], loads

    sc = load_config("tiny").sample
    cmd_line = "python benchmarks/quality.py" + "".join(f" {a}" for a in sys.argv[1:])
    curve = ", ".join(f"{s}: {p:.1f}" for s, p in psnr)
    loss_pts = summary["diffusion_loss_curve"]
    loss_curve = ", ".join(f"{s}: {v:.3f}" for s, v in loss_pts)
    lines = [
        SECTION,
        "",
        f"Measured with `{cmd_line}` on {started.strftime('%Y-%m-%d %H:%M UTC')} "
        f"({total / 60:.1f} min in all, budget {args.budget_minutes:g} min"
        f"{': OVER BUDGET' if over else ''}).",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, CPU only; torch threads: default. "
        f"Load average (1/5/15 min) before: {load_before}, after: {load_after} (the machine is shared; "
        "a load above the core count slows every step and can make the time caps stop training early).",
        f"- Training: `pvdm train-ae --preset tiny` {ae['step']} steps"
        f"{' (stopped by its time cap)' if not ae['complete'] else ''}, held-out PSNR "
        f"{ae.get('test_psnr', float('nan')):.2f} dB; `pvdm train-diffusion --preset tiny` {dm['step']} steps"
        f"{' (stopped by its time cap)' if not dm['complete'] else ''}, loss {dm['first_loss']:.3f} (first step) -> "
        f"{dm['loss_ema']:.3f} (running mean); training took {t_train / 60:.1f} min.",
        f"- Held-out PSNR by step: {curve}.",
        f"- Diffusion loss (running mean) by step: {loss_curve}.",
        f"- FVD: `pvdm eval-fvd`, Kinetics-400 I3D (detector {fvd_generated.get('detector')}, weights sha256 "
        f"{str(fvd_generated.get('weights_sha256', ''))[:12]}), {args.num} clips of 16 frames per side, "
        f"32x32 videos center-cropped/resized to 224, ddof 1; real = `pvdm synth --num {args.num}` (test seeds, "
        f"never trained on); sampler {sc.sampler} {sc.steps} steps, eta {sc.eta:g}, "
        f"EMA weights, seed {args.seed}. All videos go through mp4 the same way. With {args.num} videos per side FVD "
        "is biased upwards: compare the rows with each other, not with published numbers.",
        "",
        "| Videos | FVD (lower is better) | What |",
        "|---|---|---|",
        *[f"| {name} | {value:.1f} | {what} |" for name, value, what in rows],
        "",
        "Time per command: " + "; ".join(f"`{c['command'].split(' --')[0]}` {c['seconds']:.0f} s" for c in log) + ".",
        "",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-minutes", type=float, default=15.0, help="Total wall-clock budget (default 15).")
    ap.add_argument("--out", type=Path, default=Path("runs/quality"), help="Working folder (runs, videos, stats).")
    ap.add_argument("--num", type=int, default=64, help="Videos per FVD side (default 64).")
    ap.add_argument("--seed", type=int, default=0, help="Sampling seed (video i uses seed + i).")
    ap.add_argument("--no-record", action="store_true", help="Do not write benchmarks/RESULTS.md.")
    args = ap.parse_args()

    out = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"quality benchmark: {out} is not empty; give a new --out (runs would resume otherwise)")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc)
    load_before = load_avg()
    budget = args.budget_minutes * 60
    reserve = EVAL_RESERVE_S_PER_VIDEO * args.num
    train_budget = budget - reserve - UNTRAINED_RUN_S - 30  # 30 s: start-up of the training commands
    if train_budget < 60:
        raise SystemExit(f"quality benchmark: a budget of {args.budget_minutes} min leaves no time to train "
                         f"(evaluation alone needs about {reserve / 60:.1f} min)")
    log: list[dict] = []

    # 1. train: the tiny preset, capped by the budget
    ae_dir, dm_dir, dm0_dir = out / "ae", out / "dm", out / "dm-untrained"
    ae_cap = AE_SHARE * train_budget
    ae = pvdm("train-ae", "--preset", "tiny", "--out", str(ae_dir), "--max-time", f"{ae_cap / 60:.2f}", log=log)
    dm_cap = budget - reserve - (time.monotonic() - t_start) - UNTRAINED_RUN_S
    dm = pvdm("train-diffusion", "--preset", "tiny", "--ae", str(ae_dir), "--out", str(dm_dir),
              "--max-time", f"{dm_cap / 60:.2f}", log=log)
    pvdm("train-diffusion", "--preset", "tiny", "--ae", str(ae_dir), "--out", str(dm0_dir), "--steps", "0", log=log)
    t_train = time.monotonic() - t_start

    # 2. videos: held-out real, generated, reconstructed, untrained
    real, gen, rec, unt = out / "real", out / "generated", out / "recon", out / "untrained"
    pvdm("synth", str(real), "--num", str(args.num), "--split", "test", log=log)
    seed = str(args.seed)
    pvdm("sample", "--model", str(dm_dir), "--num", str(args.num), "--seed", seed, "-o", str(gen), log=log)
    pvdm("sample", "--model", str(dm0_dir), "--num", str(args.num), "--seed", seed, "-o", str(unt), log=log)
    pvdm("encode", str(real), "--ae", str(ae_dir), "-o", str(out / "real-latents.npz"), "--clips", "first",
         "--reconstruct", str(rec), log=log)

    # 3. FVD: real statistics once, then each fake set against them
    stats = out / "real.stats.npz"
    n = str(args.num)
    fvd = {}
    r = pvdm("eval-fvd", str(real), str(gen), "-n", n, "--save-stats-real", str(stats), log=log)
    fvd["generated"] = r
    fvd["reconstruction"] = pvdm("eval-fvd", str(stats), str(rec), "-n", n, log=log)
    fvd["untrained"] = pvdm("eval-fvd", str(stats), str(unt), "-n", n, log=log)
    total = time.monotonic() - t_start
    load_after = load_avg()

    # 4. report
    ae_metrics, dm_metrics = read_metrics(ae_dir), read_metrics(dm_dir)
    psnr = [(m["step"], m["psnr"]) for m in ae_metrics if m.get("split") == "test"]
    dm_losses = [(m["step"], m["loss_ema"]) for m in dm_metrics if "loss_ema" in m]
    rows = [
        ("Generated (trained tiny model)", fvd["generated"]["fvd"], f"{args.num} samples, seed {args.seed}"),
        ("AE reconstructions (floor)", fvd["reconstruction"]["fvd"], f"the {args.num} held-out videos through the AE"),
        ("Untrained diffusion model (ceiling)", fvd["untrained"]["fvd"], "step-0 UNet, same AE, seed and sampler"),
    ]
    print(f"\n{'':38s} {'FVD':>9s}")
    for name, value, _ in rows:
        print(f"{name:38s} {value:9.1f}")
    print(f"\ntrain-ae: {ae['step']} steps, held-out PSNR {ae.get('test_psnr', float('nan')):.2f} dB; "
          f"train-diffusion: {dm['step']} steps, loss {dm['first_loss']:.4f} -> {dm['loss_ema']:.4f}; "
          f"total {total / 60:.1f} min (budget {args.budget_minutes:g} min)")
    over = total > budget
    if over:
        print(f"warning: the run took {total / 60:.1f} min, over its {args.budget_minutes:g}-min budget "
              "(evaluation slower than EVAL_RESERVE_S_PER_VIDEO assumes, or a loaded machine)", file=sys.stderr)

    summary = {"fvd": {k: v["fvd"] for k, v in fvd.items()}, "ae": ae, "diffusion": dm, "total_s": total,
               "over_budget": over,
               "train_s": t_train, "budget_min": args.budget_minutes, "commands": log, "psnr_curve": psnr,
               "diffusion_loss_curve": dm_losses[:: max(1, len(dm_losses) // 12)]}
    (out / "quality.json").write_text(json.dumps(summary, indent=2))
    if args.no_record:
        return

    lines = section_lines(args, started, summary, rows, fvd["generated"], (load_before, load_after))
    replace_section(RESULTS, SECTION, "\n".join(lines) + "\n")
    print(f"\nwrote the Quality section of {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
