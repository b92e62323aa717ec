"""Clips/s the training data path delivers (VideoClipDataset through a DataLoader, as train-ae
reads it) from a UCF-101-like tree of avi files and from frame folders, with 0, 1, 2 and 4
workers, against the clips/s a GPU autoencoder step consumes.

The test data are made here, small: `--videos` avi files of 320x240 at 25 fps, `--seconds` long
(UCF-101: 320x240, 25 fps, about 7 s), MPEG-4 part 2 as UCF-101's xvid, in class folders; and the
same videos as folders of JPEG frames (SkyTimelapse's layout). Clips: 16 frames at 256^2, a
random window per video, as the ucf256 preset reads them.

What a GPU consumes (the stated assumption): the ucf256 autoencoder step's FLOPs per clip
(`pvdm plan`'s count, fake tensors) at `--gpu-tflops` x `--utilization` (default an A10's bf16
125 TFLOPS at 40%). The diffusion stage reads cached latents (`pvdm encode`), not videos.

    python benchmarks/data_throughput.py              # prints the table
    python benchmarks/data_throughput.py --write      # and rewrites its section of RESULTS.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import ROOT, cpu_model, load_avg, replace_section  # noqa: E402

HEADING = "## Data throughput: clips/s the dataset path delivers"


def make_data(root: Path, videos: int, seconds: float) -> tuple[Path, Path]:
    """An avi tree (root/ucf/<Class>/v_<Class>_gNN_c01.avi) and the same frames as JPEG folders."""
    import imageio.v3 as iio
    import imageio_ffmpeg

    from pvdm_core.data.synthetic import synthetic_video
    from pvdm_core.io.video_io import to_uint8

    ucf, frames_root = root / "ucf", root / "frames"
    n = int(seconds * 25)
    for i in range(videos):
        # moving shapes at 320x240 plus noise, so the codec has detail to decode
        clip = to_uint8(synthetic_video(i, n, 240))  # (T, 240, 240, 3)
        clip = np.concatenate([clip, clip[:, :, :80]], axis=2)  # (T, 240, 320, 3)
        clip = np.clip(clip.astype(np.int16) + np.random.default_rng(i).integers(-12, 12, clip.shape), 0, 255).astype(np.uint8)
        name = f"Class{i % 4}"
        path = ucf / name / f"v_{name}_g{i:02d}_c01.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = imageio_ffmpeg.write_frames(str(path), (320, 240), fps=25, codec="mpeg4", quality=7,
                                             macro_block_size=8, ffmpeg_log_level="error")
        writer.send(None)
        for frame in clip:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        folder = frames_root / f"video{i:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(clip):
            iio.imwrite(folder / f"{t:05d}.jpg", frame, quality=90)
    return ucf, frames_root


def clips_per_s(root: Path, workers: int, clips: int, batch: int) -> float:
    from pvdm_core.data.datasets import VideoClipDataset
    from pvdm_core.io.video_io import find_videos

    dataset = VideoClipDataset(find_videos(root), 16, 1, 256, random_clip=True)
    sampler = RandomSampler(dataset, replacement=True, num_samples=clips, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers)
    t0, seen = time.perf_counter(), 0
    for x in loader:  # (B, 3, 16, 256, 256)
        seen += len(x)
    return seen / (time.perf_counter() - t0)


def gpu_clips_per_s(tflops: float, utilization: float) -> float:
    """Clips/s one GPU's ucf256 autoencoder steps consume (GAN phase, bf16, checkpointing on)."""
    from pvdm_core.base.config import load_config
    from pvdm_core.training.step_cost import fake_step_cost

    cfg = load_config("ucf256", None, ["ae_train.grad_checkpoint=true"])
    flops = fake_step_cost(cfg, "ae", 1, torch.bfloat16, count_flops=True).flops
    return tflops * 1e12 * utilization / flops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=7.0)
    ap.add_argument("--clips", type=int, default=24, help="clips read per setting")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 4])
    ap.add_argument("--gpu-tflops", type=float, default=125.0)
    ap.add_argument("--utilization", type=float, default=0.4)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    load_start = load_avg()
    consume = gpu_clips_per_s(args.gpu_tflops, args.utilization)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ucf, frames = make_data(Path(tmp), args.videos, args.seconds)
        for name, root in (("avi (UCF-101-like)", ucf), ("JPEG frame folders", frames)):
            for w in args.workers:
                rate = clips_per_s(root, w, args.clips, 4)
                rows.append(f"| {name} | {w} | {rate:.2f} | {rate / consume:.2f} |")
                print(rows[-1], file=sys.stderr, flush=True)
    text = "\n".join([f"| source | workers | clips/s | share of one GPU's need ({consume:.1f} clips/s) |",
                      "|---|---:|---:|---:|", *rows])
    print(text)
    if args.write:
        note = (f"`python benchmarks/data_throughput.py --write`: {cpu_model()}, the workers on one core "
                f"(taskset), load average {load_start} at the start and {load_avg()} at the end: the machine was "
                f"shared with other jobs, so these rates are lower bounds. {args.videos} videos of "
                f"{args.seconds:g} s at 320x240, 25 fps; clips of 16 frames at 256^2, batch 4, {args.clips} clips "
                f"per row. A GPU's need: the ucf256 autoencoder step (GAN phase, bf16, checkpointing) costs "
                f"{args.gpu_tflops * 1e12 * args.utilization / consume / 1e12:.2f} TFLOP per clip by `pvdm plan`'s "
                f"count, at {args.utilization:.0%} of {args.gpu_tflops:g} TFLOPS: {consume:.1f} clips/s.\n")
        replace_section(ROOT / "benchmarks" / "RESULTS.md", HEADING, f"{HEADING}\n\n{note}\n{text}\n")


if __name__ == "__main__":
    main()
