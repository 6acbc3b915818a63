"""Reading one field of an LTX transformer's JSON config, with an error that names the field.

The configs come from files (a single file's safetensors header, a diffusers ``config.json``), so
every value is checked for its type and range here and a bad one raises
:class:`~studio.errors.CheckpointError` naming the field, the value and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from studio.errors import CheckpointError

#: Marks a field without a default: it must be present.
REQUIRED = object()

_HINT = "the model file's configuration is damaged or belongs to another kind of model"


def field_error(source: str, key: str, value: Any, expected: str) -> CheckpointError:
    """The error for field ``key`` of ``source`` holding ``value`` where ``expected`` was due."""
    message = f"{source} config field '{key}' is {value!r}; expected {expected}"
    return CheckpointError(message, _HINT)


def _get(d: Mapping[str, Any], source: str, key: str, default: Any) -> Any:
    if key in d:
        return d[key]
    if default is REQUIRED:
        raise CheckpointError(f"{source} config has no field '{key}'", _HINT)
    return default


def positive_int(d: Mapping[str, Any], source: str, key: str, default: Any = REQUIRED) -> int:
    """``d[key]`` as an int ≥ 1 (bools refused: JSON ``true`` is not a width)."""
    value = _get(d, source, key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise field_error(source, key, value, "a positive integer")
    return value


def positive_float(d: Mapping[str, Any], source: str, key: str, default: Any = REQUIRED) -> float:
    """``d[key]`` as a float > 0 (an int is accepted: JSON writes 1000 for 1000.0)."""
    value = _get(d, source, key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise field_error(source, key, value, "a positive number")
    return float(value)


def flag(d: Mapping[str, Any], source: str, key: str, default: Any = REQUIRED) -> bool:
    """``d[key]`` as a bool (JSON ``true`` / ``false`` only)."""
    value = _get(d, source, key, default)
    if not isinstance(value, bool):
        raise field_error(source, key, value, "true or false")
    return value


def fixed(d: Mapping[str, Any], source: str, key: str, default: Any, expected: Any) -> None:
    """Check that an architecture choice this transformer does not vary has its one value.

    ``default`` is what the original class assumes when the field is absent.
    """
    value = _get(d, source, key, default)
    if value != expected or type(value) is not type(expected):
        raise field_error(source, key, value, f"{expected!r} (the only variant supported)")


def positions(d: Mapping[str, Any], source: str, key: str) -> tuple[float, float, float]:
    """``d[key]`` as three positive numbers (the RoPE's largest (t, y, x) positions)."""
    value = _get(d, source, key, REQUIRED)
    ok = isinstance(value, list | tuple) and len(value) == 3 and all(
        not isinstance(v, bool) and isinstance(v, int | float) and v > 0 for v in value
    )
    if not ok:
        raise field_error(source, key, value, "a list of three positive numbers")
    return (value[0], value[1], value[2])
