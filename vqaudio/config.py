"""Turning nested config dataclasses into JSON-able dicts and back, with unknown keys refused."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from vqaudio.errors import ConfigError, UnknownKeyError

T = TypeVar("T")


def to_dict(obj: Any) -> dict[str, Any]:
    """Nested dataclass -> plain dict (tuples become lists)."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"expected a dataclass instance, got {type(obj).__name__}")
    return dataclasses.asdict(obj)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(members[0], value, where) if len(members) == 1 else value
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_convert(item, v, where) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses are built recursively.

    Unknown keys raise :class:`UnknownKeyError` (a :class:`ConfigError`) so a typo in a config file is caught,
    not silently ignored.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table/object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise UnknownKeyError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None
