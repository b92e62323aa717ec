"""The one checkpoint module: atomic save, safe load, run folders with a `latest` pointer.

A checkpoint is a dict with at least {"kind", "config", "step"}; "config" is the resolved
config as plain data, so later commands need only the checkpoint.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from pvdm_core.base.atomic import atomic_path, write_text_atomic
from pvdm_core.base.config import Config, config_from_dict
from pvdm_core.base.errors import BadInputError

LATEST = "latest"  # file in a run folder naming the newest checkpoint
KEEP_SUFFIX = ".keep"  # step-NNNNNNN.pt.keep next to a checkpoint: pruning never deletes it


def save_checkpoint(path: Path, state: dict[str, Any], point_latest: bool = True) -> Path:
    """Write `state` atomically and (by default) point the run folder's `latest` at it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    if point_latest:
        write_text_atomic(path.parent / LATEST, path.name + "\n")
    return path


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` step-NNNNNNN.pt of a run folder (keep 0: none deleted);
    never the one `latest` names or one marked with a .keep file. Returns the deleted files."""
    if keep <= 0:
        return []
    pointer = run_dir / LATEST
    current = pointer.read_text().strip() if pointer.is_file() else None
    steps = sorted(run_dir.glob("step-*.pt"), key=lambda f: (f.stat().st_mtime_ns, f.name))
    doomed = [f for f in steps[: max(0, len(steps) - keep)]
              if f.name != current and not f.with_name(f.name + KEEP_SUFFIX).exists()]
    for f in doomed:
        f.unlink(missing_ok=True)
    return doomed


def resolve_checkpoint(run_or_ckpt: str | Path) -> Path:
    """A checkpoint file, or a run folder (its `latest` pointer, else its newest *.pt)."""
    p = Path(run_or_ckpt)
    if p.is_file():
        return p
    if p.is_dir():
        pointer = p / LATEST
        if pointer.is_file():
            target = p / pointer.read_text().strip()
            if target.is_file():
                return target
        found = sorted(p.glob("*.pt"), key=lambda f: f.stat().st_mtime)
        if found:
            return found[-1]
        raise BadInputError(f"no checkpoint in run folder {p}")
    raise BadInputError(f"checkpoint or run folder not found: {p}")


def load_tensors(path: str | Path, what: str = "PyTorch checkpoint") -> Any:
    """The one way pvdm reads a torch file: torch.load(weights_only=True), so only tensors and
    plain containers load and nothing in the file runs. Any failure is one BadInputError line
    (torch's own message spans many lines and advises weights_only=False); `what` names the
    expected content in it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's pickle-protocol note on a plain pickle
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # the weights-only unpickler refused something
        why = next((ln.strip() for ln in str(e).splitlines() if "unsupported" in ln.lower()), "")
        raise BadInputError(f"{path} needs more than tensors to load (refused, nothing in it was run)"
                            f"{': ' + why[:160] if why else ''}") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, not a torch file, ...
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise BadInputError(f"{path} is not a readable {what} (truncated or another format?): {first}") from None


def load_checkpoint(run_or_ckpt: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load safely (weights_only: no code runs) and check it is the expected kind."""
    path = resolve_checkpoint(run_or_ckpt)
    state = load_tensors(path, "pvdm checkpoint")
    if not isinstance(state, dict) or "config" not in state or "kind" not in state:
        raise BadInputError(f"{path} is not a pvdm checkpoint (no config/kind inside)")
    if kind is not None and state["kind"] != kind:
        raise BadInputError(f"{path} is a {state['kind']} checkpoint, expected {kind}")
    state["path"] = str(path)
    return state


def checkpoint_config(state: dict[str, Any]) -> Config:
    return config_from_dict(state["config"])


# Keys of the compared sections that say how the model computes, not what it is: a resume may
# change them (e.g. turn gradient checkpointing on to fit a smaller GPU).
HOW_NOT_WHAT = {"unet": ("grad_checkpoint",)}


def check_same_model(state: dict[str, Any], cfg: Config, sections: tuple[str, ...]) -> None:
    """Refuse to resume a checkpoint whose model or data shape differs from the command's config.
    The saved config is read through the schema first, so a key added to it since (with the
    default that keeps the old behaviour, e.g. unet.num_classes: 0) does not count as a change."""
    saved = config_from_dict(state["config"]).to_dict()
    now = cfg.to_dict()
    for config in (saved, now):
        for name, keys in HOW_NOT_WHAT.items():
            config[name] = {k: v for k, v in config[name].items() if k not in keys}
    for section in sections:
        name, _, field = section.partition(".")
        a, b = (saved[name], now[name]) if not field else (saved[name][field], now[name][field])
        if a != b:
            diff = ([k for k in a if a[k] != b.get(k)] if isinstance(a, dict) else [])
            what = f"{section}.{diff[0]}" if diff else section
            raise BadInputError(
                f"{state['path']} was trained with a different {what} (preset {saved.get('preset')}); "
                f"use another --out or the same preset and --set options"
            )
