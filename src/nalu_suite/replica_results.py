"""``results.json`` of a ``replicas=R`` run: one row per replica (a plain run's metrics plus ``seed``)
and the summaries Madsen & Johansen report over seeds.

Aggregates: ``<success>_rate`` with its 95% Wilson interval (``_ci_low``, ``_ci_high``),
``solved_at_median`` over the replicas that were solved, and the mean over replicas of every other
numeric metric, under its own name (so a sweeper's ``optimized_metric`` still finds e.g. ``val/mse``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nalu_suite.stats import mean_std, median_or_none, wilson_interval

#: row keys that are not averaged into the top level
NOT_AVERAGED = ("seed", "solved_at", "diverged_at", "wall_time_s", "train_steps", "success_threshold")


def as_logged(value: float) -> float:
    """``value`` rounded to float32, as Lightning stores a logged float (``callback_metrics``)."""
    return float(np.float32(value))


def summarize(rows: list[dict[str, Any]], success_metric: str | None) -> dict[str, Any]:
    """Aggregates over ``rows`` (module docstring); ``success_metric`` is e.g. ``test/extrap/success``."""
    out: dict[str, Any] = {"replicas_count": len(rows)}
    if success_metric and rows and all(success_metric in r for r in rows):
        k = sum(float(r[success_metric]) > 0.5 for r in rows)
        lo, hi = wilson_interval(k, len(rows))
        out[f"{success_metric}_rate"] = k / len(rows)
        out[f"{success_metric}_rate_ci_low"] = lo
        out[f"{success_metric}_rate_ci_high"] = hi
    solved = [r["solved_at"] for r in rows if not math.isnan(r.get("solved_at", math.nan))]
    median = median_or_none(solved)
    out["solved_at_median"] = float(median) if median is not None else math.nan
    out["diverged"] = sum(1 for r in rows if "diverged_at" in r)
    names = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float))})
    for name in names:
        if name in NOT_AVERAGED or name == success_metric:
            continue
        out[name] = mean_std([float(r[name]) for r in rows if name in r])[0]
    return out
