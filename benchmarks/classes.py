"""Class-conditional generation and guidance on the synthetic set, measured.

    python benchmarks/classes.py [--out DIR] [--ae-steps 8000] [--dm-steps 7000] [--num 96] [--long-num 48] [--no-record]

1. `pvdm train-ae --preset demo --steps 8000` (the tiny architecture with the demo's MSE loss
   and cosine lr: the tiny preset's 500 L1 steps decode the shapes as blobs no one could name)
   and `pvdm train-diffusion --preset tiny` with `unet.num_classes=3, data.class_labels=true,
   diffusion.label_dropout=0.1` and a warm-up + cosine lr, both on the class-labelled synthetic
   set (one shape a video; its kind, disc/square/triangle, is the class). Re-running with the
   same --out resumes and reuses finished runs and samples.
2. The judge (pvdm_core/evaluation/metrics/shape_judge.py): a small CNN trained for a couple of
   minutes on frames of real class-labelled training videos and their AE reconstructions; its
   held-out accuracy is reported.
3. Class: `pvdm sample --class disc,square,triangle --guidance W` for each W (videos cycle over
   the classes, the same seeds for every W), and once without --class (the null label). Table:
   the share of videos the judge assigns to the requested class, per class and overall
   (chance: 1/3), and the mean probability it gives the requested class.
4. Previous-clip guidance: 32-frame videos (two clips) with `--cond-guidance W`. Table: mean
   absolute frame difference across the clip boundary (frames 15 -> 16) against the mean inside
   the clips, and FVD32 against real 32-frame test videos (`pvdm eval-fvd -f 32`). The same
   jump after a real clip 1 (`extend`, per W), and the yardsticks: a real video across its own
   boundary, and a real clip 1 followed by another video's clip 2.
5. Two contact sheets (benchmarks/classes_sheet.png, benchmarks/boundary_sheet.png), then the
   "## Class-conditional generation" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
sys.path.insert(0, str(ROOT / "benchmarks"))
from reporting import cpu_model, load_avg, pvdm, read_metrics, replace_section  # noqa: E402
from classes_sheets import boundary_sheet, class_sheet, reference_frames  # noqa: E402
from pvdm_core.evaluation.metrics.shape_judge import (Judge, make_net, real_videos, through_ae,  # noqa: E402
                                                      to_float_videos, train_judge)

from pvdm_core.artifacts.load import load_autoencoder, load_diffusion  # noqa: E402
from pvdm_core.base.device import choose_device  # noqa: E402
from pvdm_core.data.datasets import SYNTHETIC_TEST_OFFSET  # noqa: E402
from pvdm_core.data.labels import class_of  # noqa: E402
from pvdm_core.data.synthetic import SHAPES  # noqa: E402
from pvdm_core.evaluation.fvd.distance import fvd_from_stats  # noqa: E402
from pvdm_core.evaluation.fvd.stats import FeatureStats  # noqa: E402
from pvdm_core.evaluation.metrics.continuity import boundary_jump  # noqa: E402
from pvdm_core.generate.sample import encode, generate  # noqa: E402
from pvdm_core.io.checkpoint import resolve_checkpoint  # noqa: E402
from pvdm_core.io.video_io import to_float  # noqa: E402

SECTION = "## Class-conditional generation"
CLASS_SETS = ["--set", "unet.num_classes=3", "--set", "data.class_labels=true", "--set", "diffusion.label_dropout=0.1",
              "--set", "diffusion_train.lr_schedule=cosine", "--set", "diffusion_train.warmup_steps=100"]
ALL_CLASSES = ",".join(SHAPES)


def sample_set(model: Path, out: Path, num: int, seed: int, *extra: str, log: list[dict]) -> tuple[np.ndarray, dict]:
    """`pvdm sample --format npz` into `out`: uint8 (N, T, H, W, 3). Kept from an earlier run of
    the benchmark when that sampled the same checkpoint (its FVD too, in fvd.json)."""
    done = out / "result.json"
    result = json.loads(done.read_text()) if done.is_file() else {}
    if result.get("model") != str(resolve_checkpoint(model)):
        (out / "fvd.json").unlink(missing_ok=True)
        result = pvdm("sample", "--model", str(model), "--num", str(num), "--seed", str(seed), "--batch-size", "48",
                      "--steps", "50", "-o", str(out), "--format", "npz", *extra, log=log)  # as measured
        done.write_text(json.dumps(result))
    return np.stack([np.load(p)["video"] for p in result["videos"]]), result


def fvd32(real_dir: Path, stats: Path, fake_dir: Path, num: int, frames: int, log: list[dict]) -> dict:
    """`pvdm eval-fvd -f frames` of fake_dir against the real videos (their statistics saved once)."""
    done = fake_dir / "fvd.json"
    if not done.is_file():
        real_side = [str(stats)] if stats.is_file() else [str(real_dir), "--save-stats-real", str(stats)]
        done.write_text(json.dumps(pvdm("eval-fvd", real_side[0], str(fake_dir), "-f", str(frames), "-n", str(num),
                                        *real_side[1:], log=log)))
    return json.loads(done.read_text())


def class_fvd(out: Path, weights: list[float], num_real: int, frames: int, log: list[dict]) -> dict:
    """FVD of each class's samples against real test videos of each class (a matrix per guidance
    weight) and, as the yardstick of what this sample size can tell apart, of held-out real videos
    of each class against the same references. Per class, the first `heldout` real videos are the
    held-out rows and the rest the references; I3D features come from one `pvdm eval-fvd
    --save-features` call over all of them."""
    real_dir, fake_dir, feats = out / "real16-classes", out / "fvd-fake", out / "class_features.npz"
    if not real_dir.is_dir():
        pvdm("synth", str(real_dir), "--num", str(num_real), "--frames", str(frames), "--format", "npz",
             "--set", "data.class_labels=true", log=log)
    if not feats.is_file():
        fake_dir.mkdir(exist_ok=True)
        for w in weights:
            for src in sorted((out / f"class-w{w:g}").glob("sample_*.npz")):
                link = fake_dir / f"w{w:g}_{src.name}"
                if not link.exists():
                    link.symlink_to(src)
        n = max(num_real, len(list(fake_dir.glob("*.npz"))))
        pvdm("eval-fvd", str(real_dir), str(fake_dir), "-f", str(frames), "-n", str(n), "--save-features", str(feats),
             log=log)
    data = np.load(feats)
    real_class = np.array([SHAPES.index(class_of(p)) for p in data["real_paths"]])
    heldout = min(np.bincount(real_class, minlength=len(SHAPES))) // 3
    first = np.concatenate([np.flatnonzero(real_class == c)[:heldout] for c in range(len(SHAPES))])
    is_ref = np.ones(len(real_class), bool)
    is_ref[first] = False
    refs = [FeatureStats().update(data["real"][is_ref & (real_class == c)]) for c in range(len(SHAPES))]

    def row(feats_of: list[np.ndarray]) -> list[list[float]]:  # [requested c][reference c']
        return [[fvd_from_stats(ref, FeatureStats().update(f)) for ref in refs] for f in feats_of]

    fake_w = np.array([float(Path(p).name.split("_")[0][1:]) for p in data["fake_paths"]])
    fake_i = np.array([int(Path(p).stem.split("_")[-1]) for p in data["fake_paths"]])
    matrices = {"real": row([data["real"][first[c * heldout:(c + 1) * heldout]] for c in range(len(SHAPES))])}
    for w in weights:
        on = fake_w == w
        matrices[w] = row([data["fake"][on & (fake_i % len(SHAPES) == c)][:heldout] for c in range(len(SHAPES))])
    return {"matrices": matrices, "per_class": heldout, "references": [r.n for r in refs]}


def judge_for(out: Path, frames: int) -> tuple[Judge, dict]:
    """The shape classifier for this autoencoder, trained once and kept in out/judge.pt."""
    path, ae_ckpt = out / "judge.pt", str(resolve_checkpoint(out / "ae"))
    saved = torch.load(path, weights_only=True) if path.is_file() else {}
    if saved.get("ae") == ae_ckpt:
        net = make_net(len(SHAPES))  # its judge names one of the three shapes (confusion matrices)
        net(torch.zeros(1, 3, 32, 32))  # materialise the lazy layer, then load
        net.load_state_dict(saved["net"])
        return Judge(net.eval(), saved["accuracy"], saved["train_seconds"], saved["steps"]), saved["info"]
    t0 = time.monotonic()
    judge = train_judge(load_autoencoder(out / "ae", torch.device("cpu")).model, frames=frames, none_class=False)
    info = {"accuracy": judge.accuracy, "steps": judge.steps, "seconds": round(time.monotonic() - t0, 1)}
    torch.save({"ae": ae_ckpt, "net": judge.net.state_dict(), "accuracy": judge.accuracy, "steps": judge.steps,
                "train_seconds": judge.train_seconds, "info": info}, path)
    return judge, info


def test_reconstructions(ae, frames: int, num: int = 192) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The first `num` class-labelled test videos, their AE reconstructions (both (N, 3, T, R, R)
    in [-1, 1]) and their classes: the judge's confusion on reconstructions and the class sheet's
    reference rows."""
    videos, labels = real_videos(range(SYNTHETIC_TEST_OFFSET, SYNTHETIC_TEST_OFFSET + num), frames, 32)
    return videos, through_ae(ae, videos), labels.numpy()


def confusion(want: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Counts (requested or true class x judged class)."""
    conf = np.zeros((len(SHAPES), len(SHAPES)), int)
    np.add.at(conf, (want, pred), 1)
    return conf


def requested(num: int) -> np.ndarray:
    """The class of video i of a `--class disc,square,triangle` run: i mod 3."""
    return np.arange(num) % len(SHAPES)


def class_scores(judge: Judge, videos: np.ndarray, want: np.ndarray | None) -> dict:
    """Judge's confusion counts (requested x predicted), share and mean probability of the requested class."""
    p = judge.probabilities(to_float_videos(videos)).numpy()
    pred = p.argmax(1)
    if want is None:  # the null label: only the class distribution
        return {"predicted_share": [float((pred == c).mean()) for c in range(len(SHAPES))]}
    conf = confusion(want, pred)
    return {"confusion": conf.tolist(), "share": float((pred == want).mean()),
            "share_per_class": [float(conf[c, c] / max(1, conf[c].sum())) for c in range(len(SHAPES))],
            "p_requested": float(p[np.arange(len(p)), want].mean()), "pred": pred.tolist()}


def extend_real(dm_dir: Path, real: np.ndarray, labels: np.ndarray, out: Path, frames: int, weights: list[float],
                seed: int) -> dict[float, np.ndarray]:
    """Per cond-guidance weight w, `pvdm extend` of each real video's first clip (its own class,
    DDIM 50 as sample_set) in one batch: real clip 1 + generated clip 2, uint8 (N, 2T, H, W, 3).
    Kept in out when made from the same checkpoint; the model is loaded once, only if needed."""
    ckpt, extended, model = str(resolve_checkpoint(dm_dir)), {}, None
    device = choose_device("cpu")
    for w in weights:
        done = out / f"extend-w{w:g}.npz"
        saved = np.load(done) if done.is_file() else None
        if saved is not None and str(saved["model"]) == ckpt:
            extended[w] = saved["video"]
            continue
        if model is None:
            model = load_diffusion(dm_dir, device.device)
            cond = encode(model, torch.stack([to_float(v[:frames]) for v in real]), device)  # as extend_video
        opts = dataclasses.replace(model.cfg.sample, steps=50, cond_guidance=w)
        writers: list[list[np.ndarray]] = [[] for _ in real]  # generate() only appends frames to a writer
        generate(model, writers, [seed + i for i in range(len(real))], frames, opts, device, cond=cond,
                 labels=labels.tolist())
        extended[w] = np.concatenate([real[:, :frames], np.stack([np.stack(f) for f in writers])], axis=1)
        np.savez(done, video=extended[w], model=ckpt)
    return extended


def train(args: argparse.Namespace, out: Path, log: list[dict]) -> tuple[dict, dict]:
    """The autoencoder and the class-conditional diffusion model (resumed or reused under --out)."""
    ae = pvdm("train-ae", "--preset", "demo", "--steps", str(args.ae_steps), "--out", str(out / "ae"),
              "--set", "data.class_labels=true", "--set", "ae_train.eval_every=500", "--max-time", f"{args.ae_minutes:g}",
              log=log)
    dm = pvdm("train-diffusion", "--preset", "tiny", "--ae", str(out / "ae"), "--out", str(out / "dm"),
              "--steps", str(args.dm_steps), "--max-time", f"{args.dm_minutes:g}", *CLASS_SETS, log=log)
    return ae, dm


def measure(args: argparse.Namespace, out: Path, log: list[dict]) -> dict:
    dm_dir, frames = out / "dm", 16
    judge, judge_info = judge_for(out, frames)
    print(f"judge: {judge_info}", file=sys.stderr)

    # class shares under label guidance, and the null label's class distribution
    want = requested(args.num)
    runs = {w: sample_set(dm_dir, out / f"class-w{w:g}", args.num, args.seed, "--class", ALL_CLASSES,
                          "--guidance", f"{w:g}", log=log)[0] for w in args.weights}
    scores = {w: class_scores(judge, v, want) for w, v in runs.items()}
    null = class_scores(judge, sample_set(dm_dir, out / "null", args.num, args.seed, log=log)[0], None)
    per_class_fvd = class_fvd(out, args.fvd_weights, args.fvd_real, frames, log)
    test_videos, rebuilt, test_labels = test_reconstructions(load_autoencoder(out / "ae", torch.device("cpu")).model, frames)
    rebuilt_confusion = confusion(test_labels, judge.probabilities(rebuilt).argmax(1).numpy()).tolist()
    reference = reference_frames(test_videos, rebuilt, test_labels, 8)
    sheet = class_sheet(ROOT / "benchmarks" / "classes_sheet.png", runs, scores, reference)

    # two clips under previous-clip guidance: the jump at the boundary, FVD32
    real_dir = out / "real32"
    if not real_dir.is_dir():
        pvdm("synth", str(real_dir), "--num", str(args.long_num), "--frames", str(2 * frames), "--format", "npz",
             "--set", "data.class_labels=true", log=log)
    real = np.stack([np.load(p)["video"] for p in sorted(real_dir.glob("*.npz"))])
    stats = out / "real32.stats.npz"
    long_runs, long = {}, {}
    for w in args.cond_weights:
        videos, _ = sample_set(dm_dir, out / f"long-w{w:g}", args.long_num, args.seed, "--frames", str(2 * frames),
                               "--class", ALL_CLASSES, "--cond-guidance", f"{w:g}", log=log)
        fvd = fvd32(real_dir, stats, out / f"long-w{w:g}", args.long_num, 2 * frames, log)
        clip2 = class_scores(judge, videos[:, frames:], requested(args.long_num))
        long_runs[w], long[w] = videos, {**boundary_jump(videos, frames), "fvd": fvd["fvd"], "clip2_share": clip2["share"]}
    # the same boundary after a real clip 1 (`extend`), and between unrelated real clips
    real_labels = np.array([SHAPES.index(class_of(str(p))) for p in sorted(real_dir.glob("*.npz"))])
    extended, ext = extend_real(dm_dir, real, real_labels, out, frames, args.cond_weights, args.seed), {}
    for w in args.cond_weights:
        clip2 = class_scores(judge, extended[w][:, frames:], real_labels)
        ext[w] = {**boundary_jump(extended[w], frames), "clip2_share": clip2["share"]}
    unrelated = np.concatenate([real[:, :frames], np.roll(real[:, frames:], 1, axis=0)], axis=1)
    sheet2 = boundary_sheet(ROOT / "benchmarks" / "boundary_sheet.png", real, long_runs, extended, frames)
    return {"judge": judge_info, "class": scores, "null": null, "class_fvd": per_class_fvd, "long": long,
            "judge_on_reconstructions": rebuilt_confusion,
            "extend": ext, "unrelated_jump": boundary_jump(unrelated, frames),
            "real_jump": boundary_jump(real, frames), "sheets": [str(sheet), str(sheet2)], "fvd_detector": fvd.get("detector"),
            "fvd_sha": str(fvd.get("weights_sha256", ""))[:12]}


def table_lines(res: dict, args: argparse.Namespace) -> list[str]:
    """The markdown tables (also printed)."""
    base = res["null"]["predicted_share"]
    lines = ["| --guidance w | requested class made (all) | disc | square | triangle | lift over the null label"
             " (d / s / t) | mean p(requested) | confusion (rows requested d/s/t, columns judged d/s/t) |",
             "|---|---|---|---|---|---|---|---|"]
    for w in args.weights:
        s = res["class"][w]
        per = " | ".join(f"{x:.0%}" for x in s["share_per_class"])
        lift = " / ".join(f"{100 * (x - b):+.0f}" for x, b in zip(s["share_per_class"], base))
        conf = " / ".join(" ".join(str(v) for v in row) for row in s["confusion"])
        lines.append(f"| {w:g} | **{s['share']:.0%}** | {per} | {lift} pts | {s['p_requested']:.2f} | {conf} |")
    shares = ", ".join(f"{n} {x:.0%}" for n, x in zip(SHAPES, base))
    lines += ["", f"Without --class (the null label, {args.num} videos) the judge sees: {shares}. The lift is the "
              "share of a requested class minus this share: what the label adds beyond the judge's and the "
              "model's bias.", ""]
    cf = res["class_fvd"]
    lines += [f"FVD16 of {cf['per_class']} videos of each class (rows) against real test videos of each class "
              f"({', '.join(f'{n} {k}' for n, k in zip(cf['references'], SHAPES))}; columns); bold: the "
              "closest class of each row.", "",
              "| videos | requested class | " + " | ".join(f"FVD to real {n}s" for n in SHAPES)
              + " | closest is the requested class |", "|---|---|" + "---|" * len(SHAPES) + "---|"]
    for key, matrix in cf["matrices"].items():
        name = "real, held out" if key == "real" else f"--guidance {float(key):g}"
        for c, dists in enumerate(matrix):
            best = int(np.argmin(dists))
            cells = " | ".join(f"**{d:.0f}**" if k == best else f"{d:.0f}" for k, d in enumerate(dists))
            lines.append(f"| {name} | {SHAPES[c]} | {cells} | {'yes' if best == c else 'no'} |")
    lines += ["",
              "| clip 1 -> clip 2 | --cond-guidance w | frame diff. at the clip boundary | inside clips |"
              " inside clip 2 | boundary ÷ inside | FVD32 | clip 2 of the requested class |",
              "|---|---|---|---|---|---|---|---|"]

    def jump_row(name: str, w: str, s: dict, fvd: str = "–", share: str = "–") -> str:
        return (f"| {name} | {w} | {s['boundary']:.2f} | {s['inside']:.2f} | {s['inside2']:.2f} | {s['ratio']:.2f} |"
                f" {fvd} | {share} |")

    lines += [jump_row("real -> its real clip 2", "–", res["real_jump"]),
              jump_row("real -> another video's clip 2", "–", res["unrelated_jump"])]
    lines += [jump_row("generated -> generated", f"{w:g}", res["long"][w], f"{res['long'][w]['fvd']:.1f}",
                       f"{res['long'][w]['clip2_share']:.0%}") for w in args.cond_weights]
    lines += [jump_row("real -> generated (extend)", f"{w:g}", res["extend"][w], share=f"{res['extend'][w]['clip2_share']:.0%}")
              for w in args.cond_weights]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/classes"), help="Working folder; re-running resumes it.")
    ap.add_argument("--ae-steps", type=int, default=8000, help="train-ae steps (the demo preset's MSE, cosine lr).")
    ap.add_argument("--ae-minutes", type=float, default=30.0, help="Time cap of train-ae.")
    ap.add_argument("--dm-steps", type=int, default=7000, help="train-diffusion steps (tiny: 800).")
    ap.add_argument("--dm-minutes", type=float, default=60.0, help="Time cap of train-diffusion.")
    ap.add_argument("--num", type=int, default=96, help="Videos per guidance weight (cycled over the 3 classes).")
    ap.add_argument("--long-num", type=int, default=48, help="32-frame videos per cond-guidance weight (FVD32).")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    ap.add_argument("--fvd-weights", type=float, nargs="+", default=[0.0, 2.0],
                    help="Guidance weights whose samples get the class x class FVD matrix.")
    ap.add_argument("--fvd-real", type=int, default=288, help="Real test videos for the class FVD (a third held out).")
    ap.add_argument("--cond-weights", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    ap.add_argument("--seed", type=int, default=0, help="Sampling seed (video i uses seed + i).")
    ap.add_argument("--no-record", action="store_true", help="Do not write benchmarks/RESULTS.md.")
    args = ap.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started, load_before, t0 = dt.datetime.now(dt.timezone.utc), load_avg(), time.monotonic()
    log: list[dict] = []
    try:
        ae, dm = train(args, out, log)
        res = measure(args, out, log)
    finally:  # every command's time, over all invocations on this --out (later ones reuse results)
        with open(out / "commands.jsonl", "a") as f:
            f.writelines(json.dumps(entry) + "\n" for entry in log)
    total = time.monotonic() - t0
    (out / "classes.json").write_text(json.dumps({**res, "ae": ae, "dm": dm, "commands": log}, indent=2, default=str))
    lines = table_lines(res, args)
    print("\n".join(lines))
    if args.no_record:
        return
    psnr = [m["psnr"] for m in read_metrics(out / "ae") if m.get("split") == "test"]
    losses = [m["loss"] for m in read_metrics(out / "dm") if "loss" in m]  # the first: step log_every of the run
    commands = [json.loads(line) for line in (out / "commands.jsonl").read_text().splitlines()]
    spent = sum(c["seconds"] for c in commands)
    j = res["judge"]
    text = [
        SECTION, "",
        f"Measured with `python benchmarks/classes.py{''.join(f' {a}' for a in sys.argv[1:])}` on "
        f"{started.strftime('%Y-%m-%d %H:%M UTC')} ({total / 60:.1f} min for this invocation, {spent / 60:.0f} min of "
        f"`pvdm` commands over all invocations on its --out, which resume and reuse; {cpu_model()}, "
        f"{os.cpu_count()} cores, CPU only, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"load average before {load_before}, after {load_avg()}; the machine is shared).", "",
        f"- Model: `pvdm train-ae --preset demo --steps {args.ae_steps} --set data.class_labels=true` "
        f"({ae['step']} steps, held-out PSNR "
        f"{psnr[-1] if psnr else float('nan'):.2f} dB), then `pvdm train-diffusion --preset tiny "
        f"{' '.join(CLASS_SETS)}` ({dm['step']} steps{'' if dm['complete'] else ', stopped by its time cap'}, "
        f"loss {losses[0] if losses else float('nan'):.3f} at the first log step, {np.mean(losses[-10:]):.3f} "
        f"over the last 10 logged). Sampling: DDIM 50 steps, eta 1, EMA weights, "
        f"seed {args.seed}; {args.num} videos per weight, classes cycled, the same seeds for every weight.",
        f"- Judge: a 3-layer CNN (pvdm_core/evaluation/metrics/shape_judge.py) trained {j['steps']} steps "
        f"({j['seconds']:.0f} s) on "
        f"4 frames each of 4,096 real class-labelled videos (seeds of its own) and of their AE reconstructions; "
        f"held-out accuracy per video "
        f"(192 test seeds): {j['accuracy']['real']:.1%} on real videos, {j['accuracy']['reconstructed']:.1%} on their "
        f"reconstructions (the most a sample rendered by this decoder can be judged right; confusion on "
        f"them, rows true d/s/t, columns judged: {' / '.join(' '.join(map(str, r)) for r in res['judge_on_reconstructions'])}"
        f"). Chance is 33%.",
        f"- FVD32: {args.long_num} generated vs {args.long_num} real class-labelled test videos of 32 frames, "
        f"`pvdm eval-fvd -f 32` (I3D {res['fvd_detector']}, weights {res['fvd_sha']}), small-sample and biased "
        f"upwards: compare rows. Frame differences: mean |x(t+1) - x(t)| on the 0-255 scale.", "",
        *lines, "",
        "Contact sheets: `benchmarks/classes_sheet.png` (class x guidance), `benchmarks/boundary_sheet.png` "
        "(two clips per cond-guidance weight).", "",
        "Time per command, summed over all invocations on this --out (runs resumed, and samples and FVD of "
        "checkpoints a resumed run superseded, included): " + "; ".join(
            f"`pvdm {name}` {sum(c['seconds'] for c in commands if c['command'].split()[1] == name) / 60:.1f} min "
            f"({sum(c['command'].split()[1] == name for c in commands)} runs)"
            for name in dict.fromkeys(c["command"].split()[1] for c in commands)) + f"; the judge {j['seconds']:.0f} s.",
        "",
    ]
    replace_section(RESULTS, SECTION, "\n".join(text) + "\n")
    print(f"wrote the {SECTION[3:]} section of {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
