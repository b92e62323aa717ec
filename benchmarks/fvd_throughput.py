"""FVD feature-extraction throughput: I3D on 16-frame clips, videos/s, on the current device.

Two figures: "I3D only" feeds already decoded uint8 clips (resize + I3D), "with decode" runs
`collect_features` on mp4 files (DataLoader decoding + resize + I3D), as `pvdm eval-fvd` does.
Clips are synthetic 256x256 videos. Batch 1 on CPU (I3D is ~0.7 s a clip there; ~30 s in all),
16 on GPU. Run: python benchmarks/fvd_throughput.py [--device cuda] [--num-videos N] [--amp]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pvdm_core.base.device import choose_device
from pvdm_core.data.synthetic import synthetic_video
from pvdm_core.evaluation.fvd import FVDOptions, collect_features, compute_features, load_i3d, open_source, precision
from pvdm_core.io.video_io import to_uint8, write_video

FRAMES, RESOLUTION, DISTINCT = 16, 256, 4  # DISTINCT synthetic videos, cycled to num_videos


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(device: str | None = None, num_videos: int | None = None, batch_size: int | None = None,
        amp: bool = False, workers: int | None = None) -> dict:
    """Time I3D feature extraction over `num_videos` clips; returns one table row."""
    choice = choose_device(device, "off")
    dev = choice.device
    on_cpu = dev.type == "cpu"
    num_videos = num_videos or (6 if on_cpu else 256)
    batch_size = batch_size or (1 if on_cpu else 16)
    extractor, _ = load_i3d(device=dev)
    videos = [to_uint8(synthetic_video(i, FRAMES, RESOLUTION)) for i in range(DISTINCT)]
    clips = [torch.from_numpy(videos[i % DISTINCT]) for i in range(num_videos)]

    def extract(x: torch.Tensor) -> torch.Tensor:
        with precision(dev, amp):
            return extractor(x)

    # 1. warm-up (cuDNN autotuning, allocator), then decoded clips -> features
    compute_features(extract, (c.to(dev) for c in clips[:batch_size]), batch_size)
    _sync(dev)
    t0 = time.perf_counter()
    compute_features(extract, (c.to(dev, non_blocking=True) for c in clips), batch_size)
    _sync(dev)
    i3d_only = num_videos / (time.perf_counter() - t0)

    # 2. mp4 files -> DataLoader decode -> features (what eval-fvd runs per side)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(num_videos):
            write_video(Path(tmp) / f"v{i:05d}.mp4", videos[i % DISTINCT])
        opts = FVDOptions(num_videos=num_videos, frames=FRAMES, batch_size=batch_size, workers=workers, amp=amp)
        source = open_source(tmp)
        t0 = time.perf_counter()
        collect_features(source, opts, extract, dev)
        _sync(dev)
        with_decode = num_videos / (time.perf_counter() - t0)

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {"device": name, "precision": "bf16" if amp and dev.type == "cuda" else "fp32", "batch": batch_size,
            "videos": num_videos, "clip": f"{FRAMES}x{RESOLUTION}²", "i3d_only_videos_per_s": round(i3d_only, 3),
            "with_decode_videos_per_s": round(with_decode, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--num-videos", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args()
    row = run(args.device, args.num_videos, args.batch_size, args.amp, args.workers)
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(str(v) for v in row.values()) + " |")
