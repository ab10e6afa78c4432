"""Argument checks shared by the method modules: a ValueError that names the parameter, its
value and the valid range, raised before any work starts."""

from __future__ import annotations

import math
import numbers


def require(name: str, value, ok: bool, valid: str) -> None:
    """ValueError naming `name`, `value` and `valid` unless `ok`."""
    if not ok:
        raise ValueError(f"{name}={value!r} is out of range; valid: {valid}")


def check_range(name: str, value, low: float, high: float = math.inf, *, integer: bool = False,
                low_open: bool = False) -> None:
    """ValueError naming `name`, `value` and the valid interval unless `value` is a finite
    number (an integer when `integer`) in it; NaN and booleans never pass."""
    ok = (isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value) and (low < value if low_open else low <= value) and value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high == math.inf else ']'}"
        raise ValueError(f"{name} must be {'an integer' if integer else 'a finite number'} in {interval}, "
                         f"got {value!r}")
