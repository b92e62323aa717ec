"""Pretrained weights, offline: explicit path, then an environment variable, then the cache.

Nothing is ever downloaded. A missing file raises MissingWeightsError naming the file, the
places looked at and where to get it; a file whose SHA-256 differs from the expected one is
refused.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pvdm_core.base.errors import BadInputError, MissingWeightsError


def pvdm_home() -> Path:
    """Cache folder: $PVDM_HOME, default ~/.cache/pvdm."""
    return Path(os.environ.get("PVDM_HOME") or Path.home() / ".cache" / "pvdm")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class WeightsSpec:
    filename: str  # name in the cache folder
    env_var: str  # environment variable holding a path
    sha256: str | None  # expected digest of the canonical file; None = not checked
    source: str  # where a user gets the file, in one sentence

    def cache_path(self) -> Path:
        return pvdm_home() / "weights" / self.filename

    def candidates(self, explicit: str | Path | None = None) -> list[tuple[str, Path]]:
        out = []
        if explicit:
            out.append(("path given", Path(explicit)))
        if os.environ.get(self.env_var):
            out.append((f"${self.env_var}", Path(os.environ[self.env_var])))
        out.append(("cache", self.cache_path()))
        return out


def resolve_weights(spec: WeightsSpec, explicit: str | Path | None = None, check_sha: bool = True) -> Path:
    """Return the first existing candidate; an explicit path or env var that is missing is an error."""
    for origin, path in spec.candidates(explicit):
        if path.is_file():
            if check_sha and spec.sha256 and sha256_file(path) != spec.sha256:
                raise BadInputError(
                    f"{path} ({origin}) is not the expected {spec.filename}: sha256 differs from "
                    f"{spec.sha256[:12]}...; {spec.source}"
                )
            return path
        if origin != "cache":
            raise MissingWeightsError(f"{spec.filename} not found at {path} ({origin}); {spec.source}")
    raise MissingWeightsError(
        f"needs {spec.filename}: not found in {spec.cache_path()}; set ${spec.env_var} or pass its "
        f"path. {spec.source}"
    )

