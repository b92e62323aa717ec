"""Does pvdm's diffusion stage learn? Diagnostics on a fixed class-set autoencoder (issue 24).

    python benchmarks/learning.py robust   --ae AE --out DIR            # how precise must a latent be?
    python benchmarks/learning.py memorise --ae AE --out DIR --videos 1 --steps 600 [--set k=v ...]
    python benchmarks/learning.py score    --ae AE --dm DM --out DIR    # judge share, swaps, sheet
    python benchmarks/learning.py boundary --ae AE --dm DM --out DIR    # where the clip-boundary jump comes from
    python benchmarks/learning.py probe    --ae AE --out DIR --videos 4096  # is the class in the content plane?

- robust: real held-out latents plus Gaussian noise of sigma x (each plane's std), decoded; the
  judge's accuracy and PSNR against the clean reconstruction per sigma. A diffusion model's
  residual error lands in the latent like this noise, so the sigma at which shapes dissolve is
  the precision the diffusion model must reach.
- memorise: train-diffusion on the first V class-set videos (2V clips) alone, then sample: a
  model that can learn reproduces its training clips (nearest training clip PSNR, dB), which
  separates "cannot learn" from "too little compute".
- score: class-conditional samples at guidance 0 and 2, judged (share of the requested class);
  then each generated plane swapped for the real latent of a test video of the same class and
  decoded: the plane whose swap raises the share most is the one the model gets wrong.
- probe: a small CNN learns the class from the real content plane z_s alone (the first 16 frames
  of V training videos, encoded), tested on 512 held-out videos, clean and with noise of sigma x
  the plane's std: whether the class is in z_s, how much data it takes to learn, and how precise
  a generated z_s must be to keep it.

Every experiment appends one JSON line to DIR/results.jsonl and writes a PNG sheet.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from reporting import load_avg, pvdm  # noqa: E402
from pvdm_core.evaluation.metrics.continuity import boundary_jump, reconstruction_jump  # noqa: E402
from pvdm_core.evaluation.metrics.shape_judge import Judge, real_videos, train_judge  # noqa: E402

from pvdm_core.artifacts.load import LoadedAE, LoadedDiffusion, load_autoencoder, load_diffusion  # noqa: E402
from pvdm_core.base.device import choose_device  # noqa: E402
from pvdm_core.data.datasets import SYNTHETIC_TEST_OFFSET  # noqa: E402
from pvdm_core.data.synthetic import SHAPES  # noqa: E402
from pvdm_core.generate.sample import noise_source, sample_clip  # noqa: E402
from pvdm_core.io.contact_sheet import SheetRow, write_contact_sheet  # noqa: E402
from pvdm_core.io.video_io import to_uint8  # noqa: E402
from pvdm_core.models.autoencoder import Latents  # noqa: E402

CPU = choose_device("cpu")
CLASS_SETS = ["--set", "unet.num_classes=3", "--set", "data.class_labels=true"]


def judge_for(out: Path) -> Judge:
    """The demo's shape judge (trained on real videos only, so one judge scores every
    autoencoder alike), trained once and kept in out/judge.pt."""
    path = out / "judge.pt"
    if path.is_file():
        return Judge.from_state_dict(torch.load(path, weights_only=True))
    judge = train_judge()
    torch.save(judge.state_dict(), path)
    print(f"judge: {judge.accuracy} after {judge.steps} steps ({judge.train_seconds:.0f} s)", file=sys.stderr)
    return judge


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per video PSNR (dB) of (N, 3, T, H, W) in [-1, 1] against (N, ...) or broadcast."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


def share(judge: Judge, videos: torch.Tensor, want: torch.Tensor) -> float:
    return float((judge.probabilities(videos).argmax(1) == want).float().mean())


def to_uint8_batch(videos: torch.Tensor) -> np.ndarray:
    """(N, 3, T, H, W) in [-1, 1] -> uint8 (N, T, H, W, 3)."""
    return np.stack([to_uint8(v) for v in videos])


def record(out: Path, row: dict) -> None:
    row = {"time": time.strftime("%Y-%m-%d %H:%M"), "load": load_avg(), **row}
    print(json.dumps(row), flush=True)
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def sheet(path: Path, rows: list[tuple[str, torch.Tensor]], title: str) -> None:
    """One row per (label, videos (N, 3, T, H, W)): frame 0 of each of the first 12 videos."""
    cells = [SheetRow(label, np.stack([to_uint8(v)[0] for v in videos[:12]])) for label, videos in rows]
    write_contact_sheet(path, cells, title, every=1, columns=[f"#{i}" for i in range(12)])


@torch.no_grad()
def test_set(ae: LoadedAE, num: int) -> tuple[torch.Tensor, torch.Tensor, Latents]:
    videos, labels = real_videos(range(SYNTHETIC_TEST_OFFSET, SYNTHETIC_TEST_OFFSET + num), 16, 32)
    return videos, labels, ae.model.encode(videos)


# ---------------------------------------------------------------------------------------------


def robust(args: argparse.Namespace) -> None:
    ae, judge = load_autoencoder(args.ae, CPU.device), judge_for(args.out)
    with torch.no_grad():
        _robust(args, ae, judge)


def _robust(args: argparse.Namespace, ae: LoadedAE, judge: Judge) -> None:
    videos, labels, z = test_set(ae, 96)
    clean = ae.model.decode(z)
    std = [float(p.std()) for p in z]
    g = torch.Generator().manual_seed(0)
    rows = []
    for sigma in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5):
        noisy = Latents(*(p + sigma * s * torch.randn(p.shape, generator=g) for p, s in zip(z, std)))
        rebuilt = ae.model.decode(noisy)
        record(args.out, {"experiment": "robust", "sigma": sigma, "judge": share(judge, rebuilt, labels),
                          "psnr_vs_clean": float(psnr(rebuilt, clean).mean()), "plane_std": std})
        rows.append((f"sigma {sigma:g}", rebuilt))
    sheet(args.out / "robust.png", [("real", videos)] + rows, "decoded latents + noise (sigma x plane std)")
    long, _ = real_videos(range(SYNTHETIC_TEST_OFFSET, SYNTHETIC_TEST_OFFSET + 48), 32, 32)
    floor = reconstruction_jump(lambda clip: ae.model.decode(ae.model.encode(clip)), long, 16)
    record(args.out, {"experiment": "ae_boundary_floor", "ae": str(args.ae), **floor})


def train_on(args: argparse.Namespace, run: Path, videos: int, steps: int) -> dict:
    """train-diffusion on the latents of the first `videos` class-set training videos (seeds 0..,
    32 frames: two consecutive clips each), through the commands a user would run."""
    data = args.out / f"train{videos}"
    if not (data / "latents.npz").is_file():
        pvdm("synth", str(data / "videos"), "--num", str(videos), "--frames", "32", "--split", "train", "--format", "frames",
             "--set", "data.class_labels=true", log=[])
        pvdm("encode", str(data / "videos"), "--ae", str(args.ae), "-o", str(data / "latents.npz"), "--clips", "all",
             "--class-labels", "--dtype", "float32", log=[])
    extra = [a for s in args.set for a in ("--set", s)]
    t0 = time.monotonic()
    result = pvdm("train-diffusion", "--preset", args.preset, "--ae", str(args.ae), "--out", str(run),
                  "--latents", str(data / "latents.npz"), "--steps", str(steps), *CLASS_SETS, *extra, log=[])
    return {**result, "seconds": time.monotonic() - t0}


@torch.no_grad()
def generate(model: LoadedDiffusion, labels: torch.Tensor, guidance: float, seed: int = 0, steps: int = 25,
             clips: int = 1, eta: float | None = None) -> tuple[Latents, torch.Tensor]:
    """Class-conditional videos (N, 3, clips * T, H, W) of classes `labels` (-1: the null label),
    clip k > 1 conditioned on clip k - 1 as `pvdm sample` does; the latents of the last clip."""
    opts = dataclasses.replace(model.cfg.sample, guidance=guidance, steps=steps,
                               eta=model.cfg.sample.eta if eta is None else eta)
    noise, cond, videos = noise_source(list(range(seed, seed + len(labels))), opts.noise, CPU.device), None, []
    for _ in range(clips):
        z = sample_clip(model, cond, noise, opts, CPU, batch=len(labels), label=labels)
        videos.append(model.ae.model.decode(z).float().clamp(-1, 1))
        cond = model.ae.model.encode(videos[-1])
    return z, torch.cat(videos, dim=2)


def memorise(args: argparse.Namespace) -> None:
    run = args.out / f"mem{args.videos}-{args.steps}{args.tag}"
    result = train_on(args, run, args.videos, args.steps)
    ae = load_autoencoder(args.ae, CPU.device)
    seeds = range(0, args.videos)
    train, labels = real_videos(seeds, 32, 32)
    clips = torch.cat([train[:, :, :16], train[:, :, 16:]])  # (2V, 3, 16, R, R) the 2V training clips
    clip_labels = torch.cat([labels, labels])
    want = clip_labels[torch.arange(16) % len(clip_labels)]
    _, samples = generate(load_diffusion(run, CPU.device), want, 0.0)
    with torch.no_grad():
        recon = ae.model.decode(ae.model.encode(clips))
    near = torch.stack([psnr(s[None], recon).max() for s in samples])  # best match among the training clips
    record(args.out, {"experiment": "memorise", "videos": args.videos, "steps": args.steps, "set": args.set,
                      "train_seconds": round(result["seconds"], 1), "loss_ema": result.get("loss_ema"),
                      "nearest_psnr_mean": float(near.mean()), "nearest_psnr_min": float(near.min()),
                      "share_above_25db": float((near > 25).float().mean())})
    sheet(args.out / f"{run.name}.png", [("training clips (AE)", recon), ("samples", samples)],
          f"memorise {args.videos} videos, {args.steps} steps: nearest PSNR {near.mean():.1f} dB")


def score(args: argparse.Namespace) -> None:
    ae, judge = load_autoencoder(args.ae, CPU.device), judge_for(args.out)
    n = args.num
    want = torch.arange(n) % len(SHAPES)
    out = {"experiment": "score", "dm": str(args.dm), "judge_accuracy": judge.accuracy}
    rows = []
    out.update(sampler_steps=args.sampler_steps, eta=args.eta)
    model = load_diffusion(args.dm, CPU.device)
    for w in sorted({0.0, 2.0, *args.weights}):
        z_w, videos = generate(model, want, w, steps=args.sampler_steps, eta=args.eta)
        if w == 2.0:
            z = z_w  # the swaps below replace planes of the w = 2 samples
        out[f"share_w{w:g}"] = share(judge, videos, want)
        rows += [(f"w={w:g} {SHAPES[c]}", videos[want == c]) for c in range(len(SHAPES))]
    # swaps: each generated plane replaced by the real plane of a test video of the requested class
    real, real_labels, zr = test_set(ae, 3 * n)
    pick = torch.stack([torch.nonzero(real_labels == c)[i // len(SHAPES)][0] for i, c in enumerate(want.tolist())])
    for k, name in enumerate(Latents._fields):
        swapped = Latents(*(zr[j][pick] if j == k else z[j] for j in range(len(z))))
        with torch.no_grad():
            out[f"share_w2_real_{name}"] = share(judge, ae.model.decode(swapped).float(), want)
    _, two = generate(model, want[:24], 0.0, clips=2)
    out["boundary"] = boundary_jump((to_uint8_batch(two)), 16)
    record(args.out, out)
    sheet(args.out / f"score-{Path(args.dm).name}.png", rows, f"class samples of {args.dm}")
    write_contact_sheet(args.out / f"boundary-{Path(args.dm).name}.png",
                        [SheetRow(f"video {i}", to_uint8(v)[8:24], generated_from=8) for i, v in enumerate(two[:4])],
                        "two generated clips, frames 8-23 (clip 2 in orange)", every=1)


@torch.no_grad()
def boundary(args: argparse.Namespace) -> None:
    """Where the clip-boundary jump comes from: real held-out 32-frame videos; their two clips
    encoded and decoded apart (the autoencoder's own floor); clip 2 generated from clip 1's real
    latents directly and from its decode + re-encode (as `pvdm sample` continues); at w = 0."""
    model = load_diffusion(args.dm, CPU.device)
    ae = model.ae.model
    n = args.num
    real, labels = real_videos(range(SYNTHETIC_TEST_OFFSET, SYNTHETIC_TEST_OFFSET + n), 32, 32)
    z1 = ae.encode(real[:, :, :16])
    r1 = ae.decode(z1).float().clamp(-1, 1)
    out = {"experiment": "boundary", "dm": str(args.dm), "num": n, "real": boundary_jump(to_uint8_batch(real), 16),
           "ae_floor": reconstruction_jump(lambda clip: ae.decode(ae.encode(clip)), real, 16)}
    opts = dataclasses.replace(model.cfg.sample, guidance=0.0, steps=args.sampler_steps,
                               eta=model.cfg.sample.eta if args.eta is None else args.eta)
    rows = [SheetRow(f"real {i}", to_uint8(v)[8:24], generated_from=8) for i, v in enumerate(real[:2])]
    for name, cond in (("direct", z1), ("reencoded", ae.encode(r1))):
        for wc in (0.0, 1.0):
            noise = noise_source(list(range(n)), opts.noise, CPU.device)
            z = sample_clip(model, cond, noise, dataclasses.replace(opts, cond_guidance=wc), CPU, batch=n, label=labels)
            two = torch.cat([r1, ae.decode(z).float().clamp(-1, 1)], 2)
            out[f"{name}_wc{wc:g}"] = boundary_jump(to_uint8_batch(two), 16)
            out[f"{name}_wc{wc:g}_psnr_vs_real_clip2"] = float(psnr(two[:, :, 16:], real[:, :, 16:]).mean())
            rows += [SheetRow(f"{name} wc={wc:g} {i}", to_uint8(v)[8:24], generated_from=8) for i, v in enumerate(two[:2])]
    record(args.out, out)
    write_contact_sheet(args.out / f"boundary-diag-{Path(args.dm).name}.png", rows,
                        "frames 8-23: clip 1 decoded, clip 2 (orange) generated from it", every=1)


@torch.no_grad()
def encode_content(ae: LoadedAE, seeds: range) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_s (N, C, h, w) of the first 16 frames of class-set videos `seeds`, labels (N,))."""
    planes, labels = [], []
    for first in range(0, len(seeds), 256):
        videos, y = real_videos(seeds[first : first + 256], 16, 32)
        planes += [ae.model.encode(videos[i : i + 64]).z_s for i in range(0, len(videos), 64)]
        labels.append(y)
    return torch.cat(planes), torch.cat(labels)


def probe(args: argparse.Namespace) -> None:
    ae = load_autoencoder(args.ae, CPU.device)
    train_z, train_y = encode_content(ae, range(args.videos))
    test_z, test_y = encode_content(ae, range(SYNTHETIC_TEST_OFFSET, SYNTHETIC_TEST_OFFSET + 512))
    std = train_z.std()
    train_z, test_z = train_z / std, test_z / std
    width = 64
    net = torch.nn.Sequential(torch.nn.Conv2d(train_z.shape[1], width, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(width, len(SHAPES)))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-3)
    for _ in range(args.steps):
        i = torch.randint(0, len(train_z), (128,))
        loss = torch.nn.functional.cross_entropy(net(train_z[i]), train_y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        right = lambda z, y: float((net(z).argmax(1) == y).float().mean())  # noqa: E731
        g = torch.Generator().manual_seed(1)
        noisy = {f"held_out_noise{s:g}": right(test_z + s * torch.randn(test_z.shape, generator=g), test_y)
                 for s in (0.1, 0.2, 0.3)}
        record(args.out, {"experiment": "probe", "ae": str(args.ae), "videos": args.videos, "steps": args.steps,
                          "train": right(train_z, train_y), "held_out": right(test_z, test_y), **noisy})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["robust", "memorise", "score", "boundary", "probe"])
    ap.add_argument("--ae", type=Path, required=True)
    ap.add_argument("--dm", type=Path)
    ap.add_argument("--out", type=Path, default=Path("runs/learning"))
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--videos", type=int, default=1)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--num", type=int, default=48)
    ap.add_argument("--tag", default="")
    ap.add_argument("--sampler-steps", type=int, default=25)
    ap.add_argument("--eta", type=float, default=None, help="DDIM eta (default: the model's)")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--weights", type=float, nargs="*", default=[], help="score: guidance weights besides 0 and 2")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    {"robust": robust, "memorise": memorise, "score": score, "boundary": boundary, "probe": probe}[args.what](args)


if __name__ == "__main__":
    main()
