"""`pvdm.load_config` and `pvdm.Config`: the configuration the CLI resolves, from Python.

Overrides are the CLI's `--set` lines (`"sample.steps=50"`) or a mapping of the same dotted
keys to values (`{"sample.steps": 50}`); unknown keys and bad values raise BadInputError.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from pvdm_core.base.config import Config
from pvdm_core.base.config import load_config as _load_config

Overrides = Union[Sequence[str], Mapping[str, Any], None]  # --set lines, or {dotted key: value}


def assignments(overrides: Overrides) -> list[str]:
    """Overrides as --set lines: a mapping's values are written as YAML (JSON is YAML) unless strings."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if isinstance(overrides, Mapping):
        return [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in overrides.items()]
    return list(overrides)


def load_config(preset: str | None = "tiny", overrides: Overrides = None, config_file: str | Path | None = None) -> Config:
    """A preset (`pvdm presets` lists them; None: the built-in defaults), then a YAML file, then
    overrides, validated as `pvdm train-ae --preset P --config F --set ...` resolves them.

    >>> pvdm.load_config("tiny", {"sample.steps": 50}).sample.steps
    50
    """
    return _load_config(preset, Path(config_file) if config_file is not None else None, assignments(overrides))


__all__ = ["Config", "Overrides", "load_config"]
