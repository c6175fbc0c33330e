"""Validation that names the bad value and what is allowed.

Configuration sections, the decision rule and the manifest all check values read from files
with these helpers, so a wrong type (``epochs = 1.5``, ``smoothing_steps = true``) or a
non-finite number (``lr = inf``, a NaN threshold) is refused with the key named, never passed on.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` "``key = value`` is not allowed; expected ``allowed``"."""
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed; expected {allowed}")


def is_int(value: Any) -> bool:
    """An integer, not a bool (TOML and JSON ``true`` would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def integer(key: str, value: Any, low: int, high: int | None = None) -> None:
    """``value`` is an integer in ``low..high`` (no upper bound when ``high`` is None)."""
    allowed = f"an integer {low}..{high}" if high is not None else f"an integer >= {low}"
    check(is_int(value) and low <= value and (high is None or value <= high), key, value, allowed)


def number(key: str, value: Any, low: float | None = None, high: float | None = None,
           allowed: str | None = None) -> None:
    """``value`` is a finite number within ``low..high`` (inclusive; None: unbounded)."""
    ok = is_number(value) and (low is None or value >= low) and (high is None or value <= high)
    check(ok, key, value, allowed or "a finite number" + (
        f" {low}..{high}" if low is not None and high is not None
        else f" >= {low}" if low is not None else f" <= {high}" if high is not None else ""))


def check_keyword_name(name: Any, key: str) -> None:
    """A keyword name: 1-64 printable characters, no path separator or backslash, not starting
    with "." or "-" (names become file names, C strings and Wyoming model names)."""
    ok = (isinstance(name, str) and 0 < len(name) <= 64 and name.isprintable()
          and not any(c in name for c in "/\\") and name[0] not in ".-")
    check(ok, key, name, 'names of 1-64 printable characters without "/" or "\\", not '
          'starting with "." or "-"')


def build(cls: type, values: Mapping[str, Any], section: str) -> Any:
    """Construct dataclass ``cls`` from ``values``, rejecting unknown keys by name and values
    of the wrong kind by their field's type: an ``int`` field takes integers only (not 1.5, not
    true), a ``float`` field finite numbers only (not inf or nan), a ``str`` field strings."""
    check(isinstance(values, Mapping), f"[{section}]", values, "a table of key = value")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [{section}]; allowed: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        key = f"{section}.{name}"
        if hints[name] is int:
            check(is_int(value), key, value, "an integer")
        elif hints[name] is float:
            check(is_number(value), key, value, "a finite number")
        elif hints[name] is str:
            check(isinstance(value, str), key, value, "a string")
    try:
        return cls(**values)
    except TypeError as e:
        raise ConfigError(f"bad value in [{section}]: {e}") from e
