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


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``), for
    ``0.5 <= p < 1``: the CDF ``1/2 + integral_0^x pdf`` (Simpson's rule, 4,000 panels) inverted by
    bisection; accurate to about 1e-7 for ``df >= 1``."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"student_t_quantile needs 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(x: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))

    def cdf(x: float, panels: int = 4000) -> float:
        h = x / panels
        inner = sum((4 if k % 2 else 2) * pdf(k * h) for k in range(1, panels))
        return 0.5 + h / 3 * (pdf(0.0) + inner + pdf(x))

    low, high = 0.0, 1.0
    while cdf(high) < p:
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2
