"""What one side of eval-fvd (REAL or FAKE) holds: videos in natural order, or saved statistics.

A side is one of:
  - a folder, searched recursively: video files and frame folders (`find_videos`), plus
    `.npy`/`.npz` arrays: (T, H, W, 3) is one video (pvdm's npz writer), (N, T, H, W, 3)
    is N videos; statistics files found in a folder are ignored;
  - one video file or frame folder;
  - one `.npy`/`.npz` array (npz: key `video`, else the only/first array);
  - a statistics file written by `FeatureStats.save` (an npz holding `mean`, `m2`, `protocol`).
Listing reads only array headers, never video frames, so it is fast on any folder.

REAL may be narrowed to a split (`real_videos`): a UCF-101 root (official lists in
ucfTrainTestlist/) or a root holding train/ and test/ (SkyTimelapse's layout).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pvdm_core.base import distributed as dist
from pvdm_core.base.errors import BadInputError
from pvdm_core.base.progress import log
from pvdm_core.data.datasets import ucf_list_names
from pvdm_core.evaluation.fvd.arrays import array_header, is_array_file, npz_key
from pvdm_core.evaluation.fvd.stats import FeatureStats, is_stats_file
from pvdm_core.io.video_io import IMAGE_EXTS, VIDEO_EXTS, find_videos, natural_key


@dataclass(frozen=True)
class VideoRef:
    """One video: a file or frame folder, a (T, H, W, 3) array file, or row `index` of an (N, T, H, W, 3) one."""

    path: Path
    key: str | None = None  # npz member holding the array
    index: int | None = None

    @property
    def is_array(self) -> bool:
        return is_array_file(self.path)

    @property
    def label(self) -> str:
        return str(self.path) if self.index is None else f"{self.path}[{self.index}]"


@dataclass
class Source:
    """One side: either videos (`refs`) or precomputed statistics (`stats`)."""

    path: Path
    refs: list[VideoRef] = field(default_factory=list)
    stats: FeatureStats | None = None
    split: str = "all"  # which videos of a dataset root these are (`real_videos`)

    @property
    def is_stats(self) -> bool:
        return self.stats is not None


def _array_refs(path: Path) -> list[VideoRef]:
    key = npz_key(path) if path.suffix.lower() == ".npz" else None
    shape, dtype = array_header(path, key)
    where = f"{path}" + (f" (key {key!r})" if key else "")
    if dtype != np.uint8 or len(shape) not in (4, 5) or shape[-1] not in (1, 3):
        raise BadInputError(f"{where}: expected uint8 videos shaped (N, T, H, W, 3) or one video (T, H, W, 3); "
                            f"got {dtype} {shape}")
    if len(shape) == 4:
        return [VideoRef(path, key)]
    return [VideoRef(path, key, i) for i in range(shape[0])]


def _path_key(p: Path) -> list:
    return [natural_key(Path(part)) for part in p.parts]


def _open_file(path: Path) -> Source:
    suffix = path.suffix.lower()
    if suffix == ".npz" and is_stats_file(path):
        return Source(path, stats=FeatureStats.load(path))
    if is_array_file(path):
        return Source(path, refs=_array_refs(path))
    if suffix not in VIDEO_EXTS:
        raise BadInputError(f"{path}: not a video ({', '.join(sorted(VIDEO_EXTS))}), .npy/.npz array, "
                            "statistics file or folder")
    return Source(path, refs=[VideoRef(path)])


def _folder_arrays(path: Path, frame_dirs: set[Path]) -> list[Path]:
    """The array files under `path` (not inside frame folders), statistics files left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        d = Path(dirpath)
        if d in frame_dirs:
            dirnames.clear()
            continue
        dirnames.sort()
        for name in filenames:
            p = d / name
            if not is_array_file(p) or name.startswith("."):  # .x.tmpPID.npz: unfinished writes
                continue
            if p.suffix.lower() == ".npz" and is_stats_file(p):
                if dist.is_main():
                    log(f"ignoring statistics file {p} inside {path}")
                continue
            found.append(p)
    return found


def open_source(path: str | Path) -> Source:
    """List one side's videos in natural order, or load its statistics file."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"not found: {path}")
    if path.is_file():
        return _open_file(path)
    found = find_videos(path)
    if found != [path]:  # a folder of videos, not one frame folder: add the arrays in it
        found += _folder_arrays(path, {p for p in found if p.is_dir()})
    refs: list[VideoRef] = []
    for p in sorted(found, key=_path_key):
        refs += _array_refs(p) if p.is_file() and is_array_file(p) else [VideoRef(p)]
    if not refs:
        raise BadInputError(f"{path}: no videos found (video files, frame folders of "
                            f"{'/'.join(sorted(e[1:] for e in IMAGE_EXTS))}, .npy/.npz arrays)")
    return Source(path, refs=refs)


# The split that gives FVD's real statistics in StyleGAN-V, DIGAN and PVDM: UCF-101 whole
# (train + test), SkyTimelapse its train split.
CONVENTION_SPLIT = {"ucf": "all", "train-test": "train"}


def dataset_layout(path: Path) -> str | None:
    """"ucf" (ucfTrainTestlist/ inside or next to it), "train-test" (train/ and test/ in it), or None."""
    if not path.is_dir():
        return None
    if (path / "ucfTrainTestlist").is_dir() or (path.parent / "ucfTrainTestlist").is_dir():
        return "ucf"
    if (path / "train").is_dir() and (path / "test").is_dir():
        return "train-test"
    return None


def real_videos(path: str | Path, split: str = "all") -> Source:
    """REAL's side: `open_source`, narrowed to a split of a dataset root.

    split: all (every video under `path`), train or test (needs a UCF-101 or train/test
    layout), or convention (`CONVENTION_SPLIT` of the layout; a plain folder is taken whole).
    """
    path = Path(path)
    layout = dataset_layout(path)
    if split == "convention":
        split = CONVENTION_SPLIT.get(layout, "all")
    if split == "all" or path.is_file():
        source = open_source(path)
        if source.is_stats:  # the split its videos came from
            return dataclasses.replace(source, split=source.stats.protocol.get("real_split", "all"))
        if split != "all":
            raise BadInputError(f"--real-split {split} needs a dataset root; REAL ({path}) is one file")
        return source
    if layout is None:
        raise BadInputError(f"--real-split {split} needs a UCF-101 root (ucfTrainTestlist/ inside or next to it) "
                            f"or a folder holding train/ and test/ (SkyTimelapse); {path} is neither")
    if layout == "train-test":
        return dataclasses.replace(open_source(path / split), path=path, split=split)
    names = ucf_list_names(path, split) or set()
    refs = [r for r in open_source(path).refs if r.path.name in names]
    if not refs:
        raise BadInputError(f"{path}: none of its videos is in UCF-101's {split}list01.txt")
    return Source(path, refs=refs, split=split)
