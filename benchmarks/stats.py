"""The statistics every section quotes: medians, and one percentile."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are there (None skipped); None if none is."""
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def median_time(values: Iterable[float | None]) -> float | None:
    """Median of times-to-target where a run that never got there (None) counts as infinite."""
    found = [math.inf if v is None else v for v in values]
    return statistics.median(found) if found else None


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q% of them at or below it.

    q is in percent, 0 to 100 (99 for p99). The result is in the values' own unit: convert
    before or after (seconds * 1000 for milliseconds). NaN when there are no values.
    """
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered) / 100) - 1)]
