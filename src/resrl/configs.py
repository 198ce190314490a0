"""Typed dataclass configs loaded from the YAML files under ``config/``.

Unknown keys are an error (a typo in a YAML file must not silently fall back to a default).
Nested dataclass fields are built recursively.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping, Type, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def from_dict(cls: Type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclass fields."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            value = from_dict(hint, value, f"{where or cls.__name__}.{name}")
        elif hint in (tuple, typing.Tuple) or typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with path.open() as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def section(data: Mapping[str, Any], *keys: str) -> dict:
    """``section(d, 'learner', 'td3')`` -> d['learner']['td3'] or {} when absent."""
    cur: Any = data
    for key in keys:
        if not isinstance(cur, Mapping) or key not in cur:
            return {}
        cur = cur[key]
    return dict(cur)
