"""A run's results, one format for both engines: metric names, result rows, summaries, files, printing.

A result row holds a run's final metrics under the names the logger used (``test/extrap/mse``, ...),
then Madsen & Johansen's success (``<split>/success``: the task's success metric below its
threshold), ``solved_at``, ``sparsity_error``, ``train_steps`` and ``wall_time_s``. A ``replicas=R``
run writes one row per seed under ``"replicas"`` and the summaries of :func:`summarize`: the success
rate with its 95% Wilson interval, the median ``solved_at`` of the solved seeds, and the mean over seeds
of every other metric under its own name.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from nalu_suite.stats import mean_std, median_or_none, wilson_interval

log = logging.getLogger("nalu_suite")

#: row keys that are not averaged into a summary
NOT_AVERAGED = ("seed", "solved_at", "diverged_at", "wall_time_s", "train_steps", "success_threshold")


def success_name(metric: str | None) -> str | None:
    """The success flag's name for a success metric: ``test/extrap/mse`` -> ``test/extrap/success``."""
    return metric.rsplit("/", 1)[0] + "/success" if metric else None


def as_logged(value: float) -> float:
    """``value`` rounded to float32, as Lightning stores a logged float (``callback_metrics``)."""
    return float(np.float32(value))


def add_success(row: dict[str, Any], task) -> None:
    """``<split>/success`` (1 or 0) and ``success_threshold`` where the task has a success criterion."""
    threshold = task.success_threshold()
    if threshold is not None and task.success_metric in row:
        value = row[task.success_metric]
        row[success_name(task.success_metric)] = float(math.isfinite(value) and value < threshold)
        row["success_threshold"] = threshold


def result_row(
    metrics: dict[str, float],
    task,
    *,
    best_score: float | None,
    solved_at: int | None,
    sparsity_error: float,
    train_steps: int,
    wall_time_s: float,
    diverged_at: int | None = None,
) -> dict[str, Any]:
    """One run's results: ``metrics`` plus the derived values (module docstring), sorted by name."""
    row = {name: float(value) for name, value in metrics.items()}
    if best_score is not None:
        row[f"{task.monitor}_best"] = float(best_score)
    add_success(row, task)
    row["solved_at"] = float(solved_at) if solved_at is not None else math.nan
    row["sparsity_error"] = float(sparsity_error)
    row["train_steps"] = float(train_steps)
    row["wall_time_s"] = round(float(wall_time_s), 4)
    if diverged_at is not None:
        row["diverged_at"] = float(diverged_at)
        name = success_name(task.success_metric)
        if name in row:
            row[name] = 0.0
    return dict(sorted(row.items()))


def summarize(rows: list[dict[str, Any]], success: str | None) -> dict[str, Any]:
    """Summaries over the rows of R seeds (module docstring); ``success`` is e.g. ``test/extrap/success``."""
    out: dict[str, Any] = {"replicas_count": len(rows)}
    if success and rows and all(success in r for r in rows):
        k = sum(float(r[success]) > 0.5 for r in rows)
        lo, hi = wilson_interval(k, len(rows))
        out[f"{success}_rate"] = k / len(rows)
        out[f"{success}_rate_ci_low"] = lo
        out[f"{success}_rate_ci_high"] = hi
    solved = [r["solved_at"] for r in rows if not math.isnan(r.get("solved_at", math.nan))]
    median = median_or_none(solved)
    out["solved_at_median"] = float(median) if median is not None else math.nan
    out["diverged"] = sum(1 for r in rows if "diverged_at" in r)
    names = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float))})
    for name in names:
        if name in NOT_AVERAGED or name == success:
            continue
        out[name] = mean_std([float(r[name]) for r in rows if name in r])[0]
    return out


def write_results(results: dict[str, Any], run_dir: Path) -> Path:
    """``<run_dir>/results.json`` (NaN and infinities kept as JSON's NaN / Infinity)."""
    path = Path(run_dir) / "results.json"
    path.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    log.info("results written to %s", path)
    return path


def print_results(results: dict[str, Any], title: str) -> None:
    """A plain run's results as a two-column table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in results.items():
        if isinstance(value, (int, float)):
            table.add_row(name, f"{value:.6g}")
    Console().print(table)


def print_summary(results: dict[str, Any], title: str, success: str | None) -> None:
    """A ``replicas=R`` run's summaries: the success rate with its interval first, then the means."""
    from rich.console import Console
    from rich.table import Table

    count = results["replicas_count"]
    table = Table(title=title)
    table.add_column("metric")
    table.add_column(f"over {count} replicas", justify="right")
    if success and f"{success}_rate" in results:
        rate = results[f"{success}_rate"]
        lo, hi = results[f"{success}_rate_ci_low"], results[f"{success}_rate_ci_high"]
        table.add_row(f"{success} rate [95% Wilson]", f"{100 * rate:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]")
    table.add_row("solved_at (median)", f"{results['solved_at_median']:.6g}")
    for name, value in results.items():
        if (
            name not in ("replicas", "replicas_count")
            and isinstance(value, (int, float))
            and "rate" not in name
        ):
            table.add_row(f"{name} (mean)" if "/" in name else name, f"{value:.6g}")
    Console().print(table)
