"""The JSON form of the evaluation results: readers that check each value, and back.

Each ``as_*`` reader takes a JSON value and the path it was found at (for the message)
and returns it typed, or raises :class:`ResultsError` naming the path and the value.
:func:`optional` and :func:`required` read one key of an object; :func:`plain` turns the
result dataclasses back into what ``json.loads`` of their file gives.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from mixrag.errors import MixragError

T = TypeVar("T")


class ResultsError(MixragError):
    """A results dict (or ``results.json``) that does not follow the schema of
    :mod:`mixrag.eval.results`."""


def show(value: Any) -> str:
    """``repr(value)``, cut to 60 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_int(value: Any, where: str) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise ResultsError(f"{where} must be an integer, got {show(value)}")


def as_float(value: Any, where: str) -> float:
    # ints stay ints, so that a file's "em": 1 is written back as 1, not 1.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise ResultsError(f"{where} must be a number, got {show(value)}")


def as_str(value: Any, where: str) -> str:
    if isinstance(value, str | os.PathLike):
        return os.fspath(value)
    raise ResultsError(f"{where} must be a string, got {show(value)}")


def as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ResultsError(f"{where} must be true or false, got {show(value)}")


def as_list(value: Any, where: str) -> Sequence[Any]:
    if isinstance(value, list | tuple):
        return value
    raise ResultsError(f"{where} must be a list, got {show(value)}")


def as_map(value: Any, where: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise ResultsError(f"{where} must be an object, got {show(value)}")


def as_dict(value: Any, where: str) -> dict[str, Any]:
    return dict(as_map(value, where))


def as_strs(value: Any, where: str) -> tuple[str, ...]:
    return tuple(as_str(v, f"{where}[{i}]") for i, v in enumerate(as_list(value, where)))


def as_ints(value: Any, where: str) -> tuple[int, ...]:
    return tuple(as_int(v, f"{where}[{i}]") for i, v in enumerate(as_list(value, where)))


def optional(
    data: Mapping[str, Any], key: str, read: Callable[[Any, str], T], where: str
) -> T | None:
    """``data[key]`` read by ``read``; None when the key is absent or null."""
    value = data.get(key)
    return None if value is None else read(value, f"{where}.{key}")


def required(data: Mapping[str, Any], key: str, read: Callable[[Any, str], T], where: str) -> T:
    """``data[key]`` read by ``read``; absent or null is an error."""
    value = data.get(key)
    if value is None:
        raise ResultsError(f"{where} has no {key!r}")
    return read(value, f"{where}.{key}")


def section(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """The object ``data[key]``; {} when absent or null."""
    return optional(data, key, as_map, where) or {}


def complete(data: Any, cls: type, where: str) -> Mapping[str, Any]:
    """``data`` as an object holding every field of the record class ``cls``."""
    data = as_map(data, where)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]
    if missing:
        raise ResultsError(f"{where} lacks {', '.join(missing)}")
    return data


def plain(value: Any) -> Any:
    """The JSON form of ``value``, as ``json.loads`` would give it back.

    Dataclasses become dicts (fields in order), tuples lists, int keys strings.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k) if isinstance(k, int) else k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
