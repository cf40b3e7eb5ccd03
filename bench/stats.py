"""Percentiles and rounding for the figures the benchmark reports."""

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile by linear interpolation, or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def rate(count: float, seconds: float | None) -> float | None:
    return None if not seconds or seconds <= 0 else count / seconds


def busiest_window(moments: Sequence[float], seconds: float = 1.0) -> int:
    """The most moments within any ``seconds`` (a sliding window, not clock seconds)."""
    ordered = sorted(moments)
    busiest = first = 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= seconds:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest
