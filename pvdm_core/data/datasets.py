"""Datasets of clips: any folder of videos, SkyTimelapse, UCF-101 and the synthetic set.

Every dataset yields float clips (3, T, R, R) in [-1, 1] (video sets built with uint8=True: uint8
clips, for training's data workers; video_io.unit_range converts them). Splits are honest: the test split
never shares a video with train (official lists where they exist, else a stable hash of the
relative path, so adding files never moves old ones between splits).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pvdm_core.base.config import DataConfig
from pvdm_core.base.errors import BadInputError
from pvdm_core.data.synthetic import SyntheticVideoDataset
from pvdm_core.io.video_io import count_frames, find_videos, load_clip, unit_range

SYNTHETIC_TEST_OFFSET = 1_000_000  # test seeds start here: never overlap the train seeds


ClipKey = int | tuple[int, int]  # a video index, or (index, epoch): which visit of the video


def synthetic_first_seed(seed: int, split: str) -> int:
    """The seed of video 0 of a synthetic split whose train videos start at `seed`."""
    if split not in ("train", "test"):
        raise BadInputError(f"--split must be train or test, not {split!r}")
    return seed + (SYNTHETIC_TEST_OFFSET if split == "test" else 0)


class VideoClipDataset(Dataset):
    """One clip per video per visit: a random window in train, the first window in test.

    The window of a train clip is a function of (seed, epoch, index), so every epoch shows each
    video at another start, the same in every run with that seed and in a resumed one: training
    asks for (index, epoch) keys (training.StepBatchSampler(epochs=True)); a plain index reads
    the epoch from set_epoch (0 unless set).

    Unreadable or too-short videos are skipped (the next video is used), counted in
    `self.skipped` and reported on stderr; with strict=True they raise BadInputError.
    """

    def __init__(self, videos: list[Path], frames: int, frame_stride: int, resolution: int,
                 random_clip: bool, seed: int = 0, strict: bool = False, uint8: bool = False):
        if not videos:
            raise BadInputError("dataset is empty: no videos or frame folders found")
        self.videos, self.frames, self.frame_stride, self.resolution = videos, frames, frame_stride, resolution
        self.random_clip, self.seed, self.strict, self.uint8 = random_clip, seed, strict, uint8
        self.skipped: dict[str, str] = {}
        self._lengths: dict[int, int] = {}
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.videos)

    def name(self, i: int) -> str:
        return str(self.videos[i])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # random clip choice differs per epoch, reproducibly

    def _clip(self, i: int, epoch: int) -> torch.Tensor:
        path = self.videos[i]
        if i not in self._lengths:
            self._lengths[i] = count_frames(path)
        span = (self.frames - 1) * self.frame_stride + 1
        if self._lengths[i] < span:
            raise BadInputError(f"{path}: too short: needs {span} frames, has {self._lengths[i]}")
        start = 0
        if self.random_clip:
            g = torch.Generator().manual_seed(hash((self.seed, epoch, i)) & 0x7FFFFFFF)  # ints: same in every process
            start = int(torch.randint(0, self._lengths[i] - span + 1, (1,), generator=g))
        clip = load_clip(path, start, self.frames, self.frame_stride, self.resolution)  # (3, T, R, R) uint8
        return clip if self.uint8 else unit_range(clip)

    def __getitem__(self, key: ClipKey) -> torch.Tensor:
        i, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        for k in range(len(self.videos)):
            j = (i + k) % len(self.videos)
            try:
                return self._clip(j, epoch)
            except BadInputError as e:
                if self.strict:
                    raise
                if str(self.videos[j]) not in self.skipped:
                    self.skipped[str(self.videos[j])] = str(e)
                    print(f"pvdm: skipping unreadable video: {e}", file=sys.stderr)
        raise BadInputError("no readable video in the dataset")


def _hash_split(videos: list[Path], root: Path, test_fraction: float, split: str) -> list[Path]:
    def is_test(p: Path) -> bool:
        digest = hashlib.sha1(str(p.relative_to(root)).encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < test_fraction

    return [p for p in videos if is_test(p) == (split == "test")]


def ucf_list_names(root: Path, split: str) -> set[str] | None:
    """The file names of UCF-101's official split 1 (trainlist01/testlist01 in ucfTrainTestlist/
    inside or next to `root`), or None where there are no lists."""
    for lists in (root / "ucfTrainTestlist", root.parent / "ucfTrainTestlist"):
        listfile = lists / f"{'trainlist' if split == 'train' else 'testlist'}01.txt"
        if listfile.is_file():
            return {line.split()[0].split("/")[-1] for line in listfile.read_text().splitlines() if line.strip()}
    return None


def _ucf_split(root: Path, split: str, test_fraction: float) -> list[Path]:
    videos = [p for p in find_videos(root) if p.suffix.lower() == ".avi"]
    names = ucf_list_names(root, split)
    if names is not None:
        return [p for p in videos if p.name in names]
    return _hash_split(videos, root, test_fraction, split)


def video_paths(cfg: DataConfig, split: str) -> list[Path]:
    """The videos (files or frame folders) of one split of a folder-based dataset."""
    if cfg.root is None:
        raise BadInputError(f"dataset {cfg.dataset!r} needs a location: pass --data PATH")
    root = Path(cfg.root)
    if not root.exists():
        raise BadInputError(f"dataset root not found: {root}")
    if cfg.dataset == "ucf":
        videos = _ucf_split(root, split, cfg.test_fraction)
    elif cfg.dataset == "sky":
        split_dir = root / split
        if not split_dir.is_dir():
            raise BadInputError(f"SkyTimelapse layout expects {split_dir}/<video>/<clip>/*.jpg")
        videos = find_videos(split_dir)
    elif (root / "train").is_dir() and (root / "test").is_dir():  # "folder" (data.dataset is checked at load)
        videos = find_videos(root / split)
    else:
        videos = _hash_split(find_videos(root), root, cfg.test_fraction, split)
    if not videos:
        raise BadInputError(f"no {split} videos found for dataset {cfg.dataset!r} under {root}")
    return videos


def build_dataset(cfg: DataConfig, split: str = "train", frames: int | None = None,
                  seed: int = 0, strict: bool = False, uint8: bool = False) -> Dataset:
    """Clips of `frames` frames (default cfg.frames; 2T for conditional diffusion training);
    uint8: video clips stay uint8 (the synthetic set is rendered in float and stays float)."""
    if split not in ("train", "test"):
        raise ValueError(split)
    frames = frames or cfg.frames
    if cfg.dataset == "synthetic":
        count = cfg.synthetic_train if split == "train" else cfg.synthetic_test
        return SyntheticVideoDataset(count, synthetic_first_seed(cfg.synthetic_seed, split), frames, cfg.resolution,
                                     single_shape=cfg.class_labels)
    return VideoClipDataset(video_paths(cfg, split), frames, cfg.frame_stride, cfg.resolution,
                            random_clip=split == "train", seed=seed, strict=strict, uint8=uint8)
