"""Typed configs from YAML: nested dataclasses, unknown keys are errors, `a.b=value` overrides."""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from typing import Any, TypeVar

import yaml

from pard_jax.errors import UserError

T = TypeVar("T")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config key {where!r} must be a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {where!r} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        out = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if tp is float and not isinstance(value, bool):
        try:  # YAML 1.1 reads `3e-4` (no dot) as a string
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"config key {where!r} must be a number, got {value!r}") from None
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise UserError(f"config key {where!r} must be {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a dict; an unknown key is an error that names it."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            raise UserError(f"unknown config key {name!r}; known keys here: {', '.join(sorted(fields))}")
        kwargs[key] = _convert(hints[key], value, name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise UserError(f"config section {where or '<top>'!r} is incomplete: {e}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def overrides_from_args(args: Any, cls: type) -> list[str]:
    """`key=value` overrides from parsed command-line arguments, for a `load_config(cls, ...)` call.

    The positional `overrides` come first; then every top-level field of `cls` that has a same-named argument
    with a value (not None); then `no_<field>` switches that are set, as `<field>=false`.
    """
    out = list(getattr(args, "overrides", None) or [])
    for field in dataclasses.fields(cls):
        value = getattr(args, field.name, None)
        if value is not None:
            out.append(f"{field.name}={json.dumps(value)}")
    for field in dataclasses.fields(cls):
        if getattr(args, f"no_{field.name}", False):
            out.append(f"{field.name}=false")
    return out


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise UserError(f"config file {str(path)!r} does not exist; pass an existing YAML file with --config")
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise UserError(f"config file {str(path)!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {str(path)!r} must hold a mapping at the top level")
    return data


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: list[str] = ()) -> T:
    """The typed config from a YAML file (or defaults) with dotted overrides applied."""
    data = load_yaml(path) if path else {}
    return from_dict(cls, apply_overrides(data, list(overrides)))
