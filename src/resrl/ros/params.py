"""Declare a node's parameters up front from a typed dataclass and read them back.

Each dataclass field becomes a ROS parameter ``<prefix>.<field>`` (nested dataclasses
recurse) with the dataclass default as default, so `ros2 param list` shows every knob and the
YAML under config/ sets them.

Two cases the dataclass default alone cannot say:

- a default that depends on other parameters: ``field(default=..., metadata={"default_from": f})``
  declares the parameter with ``f(values)``, ``values`` being the fields of the same dataclass
  declared before it (as read from the parameters), so the parameter keeps its type and an
  override still wins (``render`` of resrl.node_config.SimRobotNodeConfig);
- an empty tuple default: declared with the array type of its hint (``Tuple[str, ...]`` ->
  STRING_ARRAY), not rclpy's guess for ``[]`` (BYTE_ARRAY, which a YAML string list would not fit);
  unset, it reads back as ``()``.
"""
from __future__ import annotations

import dataclasses
import typing

from rclpy.node import Node
from rclpy.parameter import Parameter

_ARRAY_TYPES = {str: Parameter.Type.STRING_ARRAY, float: Parameter.Type.DOUBLE_ARRAY,
                int: Parameter.Type.INTEGER_ARRAY, bool: Parameter.Type.BOOL_ARRAY}


def declare_dataclass(node: Node, cls, prefix: str = ""):
    """Declare every field of ``cls`` and return an instance filled from the parameters."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        name = f"{prefix}.{field.name}" if prefix else field.name
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            values[field.name] = declare_dataclass(node, hint, name)
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = field.default_factory()  # type: ignore[misc]
        else:
            raise TypeError(f"{cls.__name__}.{field.name} needs a default to become a parameter")
        if "default_from" in field.metadata:
            default = field.metadata["default_from"](values)
        if isinstance(default, dict):  # a mapping becomes one parameter per key
            values[field.name] = {k: _from_param(node.declare_parameter(f"{name}.{k}", _to_param(v)).value, v)
                                  for k, v in default.items()}
            continue
        if isinstance(default, tuple) and not default and _array_type(hint) is not None:
            value = node.declare_parameter(name, _array_type(hint)).value   # None when unset
            values[field.name] = () if value is None else tuple(value)
            continue
        value = node.declare_parameter(name, _to_param(default)).value
        values[field.name] = _from_param(value, default)
    return cls(**values)


def _array_type(hint):
    """Tuple[str, ...] -> Parameter.Type.STRING_ARRAY (None for another hint)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _ARRAY_TYPES.get(args[0])
    return None


def _to_param(value):
    if value is None:
        return ""  # ROS parameters have no None; the empty string stands for "unset"
    if isinstance(value, tuple):
        return list(value)
    return value


def _from_param(value, default):
    if default is None:
        return None if value == "" else value
    if isinstance(default, tuple):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    return value
