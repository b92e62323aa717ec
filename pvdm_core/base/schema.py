"""Nested mappings (parsed YAML, --set) into typed dataclasses, checked: every key must be a
field (an unknown one is named with the closest valid key), every value must have its field's
type, a `Literal` field one of its choices. The config schema (config.py) is built with it."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal

from pvdm_core.base.errors import BadInputError


def closest_name(name: str, options: list[str]) -> str:
    """' (closest valid key: x)' for the option nearest `name`, for error messages."""
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.0)
    return f" (closest valid key: {match[0]})" if match else ""


def _check_value(key: str, value: Any, hint: Any) -> Any:
    """Return value converted to the field type `hint`, or raise naming the key."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise BadInputError(f"config key {key} must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise BadInputError(f"config key {key} must be a list of {item.__name__}, got {value!r}")
        return [_check_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool) or not isinstance(value, hint):
        raise BadInputError(f"config key {key} must be {hint.__name__}, got {value!r}")
    return value


def build_dataclass(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """cls(**data), nested dataclass fields built from nested mappings, every key and value checked."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise BadInputError(f"unknown config key {full}{closest_name(key, names)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise BadInputError(f"config key {full} must be a mapping")
            kwargs[key] = build_dataclass(hint, value, f"{full}.")
        else:
            kwargs[key] = _check_value(full, value, hint)
    return cls(**kwargs)
