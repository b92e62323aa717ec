"""`.npy`/`.npz` video arrays read without loading them: headers, npz members, memory maps.

Listing a folder of large arrays must stay cheap (only headers are read), and DataLoader
workers memory-map uncompressed arrays (np.save, np.savez) instead of receiving copies.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pvdm_core.base.errors import BadInputError

ARRAY_EXTS = (".npy", ".npz")


def is_array_file(path: Path) -> bool:
    return path.suffix.lower() in ARRAY_EXTS


def npz_members(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (OSError, zipfile.BadZipFile) as e:
        raise BadInputError(f"{path}: not a readable .npz file ({e})") from None


def npz_key(path: Path) -> str:
    """The npz member holding the video(s): `video`, else the only/first array."""
    names = [n[:-4] for n in npz_members(path) if n.endswith(".npy")]
    if not names:
        raise BadInputError(f"{path}: the .npz file holds no arrays")
    return "video" if "video" in names else names[0]


def _read_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def array_header(path: Path, key: str | None) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an .npy file or an npz member, reading only its header."""
    try:
        if key is None:
            with open(path, "rb") as f:
                shape, _, dtype = _read_header(f)
        else:
            with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
                shape, _, dtype = _read_header(f)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise BadInputError(f"{path}: not a readable numpy array ({e})") from None
    return tuple(shape), np.dtype(dtype)


def open_array(path: Path, key: str | None) -> np.ndarray:
    """The array, memory-mapped when stored uncompressed (.npy, np.savez), else loaded."""
    try:
        if key is None:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{key}.npy")
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:  # skip the zip local header to the .npy bytes
                f.seek(info.header_offset)
                local = f.read(30)
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                f.seek(info.header_offset + 30 + name_len + extra_len)
                shape, fortran, dtype = _read_header(f)
                offset = f.tell()
            if not np.dtype(dtype).hasobject:
                return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                                 order="F" if fortran else "C")
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    except (OSError, ValueError, KeyError, struct.error, zipfile.BadZipFile) as e:
        raise BadInputError(f"{path}: cannot read the array ({e})") from None
