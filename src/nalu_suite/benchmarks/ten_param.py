"""The NAU paper's 10-parameter task over many seeds, every unit in lockstep on the same batches:

    nalu-bench ten_param --out logs/ten_param [--units nmu,nalu,nac_mul] [--seeds 100] [OVERRIDES]

Writes ``unit=UNIT/`` (each unit's replica run), ``cells.csv`` and ``table.md`` (success % with its Wilson
95% interval, median solved-at, mean sparsity error of the solved seeds) beside the published numbers.
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
import time
from pathlib import Path

from nalu_suite.replicas.table import train_cells
from nalu_suite.results import success_name
from nalu_suite.tasks.ten_param import TenParamTask

log = logging.getLogger("nalu_suite")

SUCCESS = success_name(TenParamTask.success_metric)
#: Madsen & Johansen 2020, ``paper/results/simple_mul.tex``: success over 100 seeds at 2·10^5 iterations
PUBLISHED = {"nmu": "94% (+3/-6)", "nalu": "26%", "nac_mul": "13%"}


def run_ten_param(units: list[str], seeds: int, out: Path, extra: list[str], seed: int = 0) -> list[dict]:
    cells = [
        (
            ["task=ten_param", f"unit={unit}", f"replicas={seeds}", f"seed={seed}", *extra],
            out / f"unit={unit}",
        )
        for unit in units
    ]
    started = time.time()
    results = train_cells(cells, desc=f"ten_param: {len(units)} units x {seeds} seeds")
    wall = time.time() - started
    rows = []
    for unit, result in zip(units, results, strict=True):
        replicas = result["replicas"]
        solved = [r for r in replicas if float(r.get(SUCCESS, 0.0)) > 0.5]
        solved_at = [r["solved_at"] for r in solved if not math.isnan(r.get("solved_at", math.nan))]
        rows.append(
            {
                "unit": unit,
                "seeds": len(replicas),
                "successes": len(solved),
                "rate": result[f"{SUCCESS}_rate"],
                "ci_low": result[f"{SUCCESS}_rate_ci_low"],
                "ci_high": result[f"{SUCCESS}_rate_ci_high"],
                "solved_at_median": statistics.median(solved_at) if solved_at else math.nan,
                "sparsity_error_solved_mean": (
                    statistics.fmean(r["sparsity_error"] for r in solved) if solved else math.nan
                ),
                "train_steps": int(result["train_steps"]),
                "published": PUBLISHED.get(unit, ""),
            }
        )
    with open(out / "cells.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"10-parameter task, {rows[0]['train_steps']:,} steps, wall {wall:.0f} s. Success % [Wilson 95%] "
        f"over {seeds} seeds; published: Madsen & Johansen 2020 (simple_mul.tex), 100 seeds, 200,000 "
        "iterations.",
        "",
        "| unit | success | median solved-at | sparsity error (solved, mean) | published |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        at = "–" if math.isnan(r["solved_at_median"]) else f"{r['solved_at_median']:,.0f}"
        rate = f"{100 * r['rate']:.0f}% [{100 * r['ci_low']:.0f}, {100 * r['ci_high']:.0f}]"
        sparsity = f"{r['sparsity_error_solved_mean']:.2g}"
        lines.append(f"| `{r['unit']}` | {rate} | {at} | {sparsity} | {r['published']} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    log.info("ten_param: table %s after %.0f s", out / "table.md", wall)
    return rows
