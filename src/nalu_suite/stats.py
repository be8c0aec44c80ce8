"""Summaries over seeds, as Madsen & Johansen (ICLR 2020) report them."""

from __future__ import annotations

import math
import statistics


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (Wilson 1927)."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaN for no values. Infinite values
    (a diverged seed's error) make the mean infinite and the deviation NaN, rather than an exception."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return (math.nan, math.nan)
    if len(values) == 1:
        return (values[0], 0.0)
    if not all(math.isfinite(v) for v in values):
        return (statistics.fmean(values), math.nan)
    return (statistics.fmean(values), statistics.stdev(values))


def median_or_none(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
