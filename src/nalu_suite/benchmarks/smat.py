"""The Primer's SMAT benchmark for one op: every module x the 9 ranges x 25 seeds, one command.

    nalu-bench smat --op add --out logs/smat_add                 # the Primer's + modules, 9 x 25 seeds
    nalu-bench smat --op div --task division --out logs/division # the Division paper's input-10 task
    nalu-bench smat --op mul --modules nmu --ranges 2,3 --seeds 5 --out /tmp/s threads=1

Each module is one ``replicas`` run of ``nalu-train task=<task> task.op=OP unit=MODULE task.range=RANGES
task.seeds_per_range=S replicas=S*len(RANGES)``: seed ``s`` trains range ``RANGES[s // S]``, so all ranges
of a module train as one batched run, and the modules train in lockstep on the same batches
(``replicas.table.train_cells``). The run's rows are then split by range into the cells of the table:

* ``unit=MODULE/``: the run's files (``results.json``, ``replicas.csv``, ...), as ``nalu-train`` writes them;
* ``cells.csv``: one row per module and range: seeds, successes, rate with its Wilson 95% interval, median
  ``solved_at`` of the solved seeds, mean sparsity error of the solved seeds (at the selected step),
  the threshold, median extrapolation MSE;
* ``table.md``: modules x ranges, ``rate [interval]``, and the average over ranges;
* ``success.png``: the module x range heat map of the success rates, the intervals written in the cells.
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
import time
from pathlib import Path

from nalu_suite.figures import save_figure
from nalu_suite.replicas.table import train_cells
from nalu_suite.results import success_name
from nalu_suite.stats import wilson_interval
from nalu_suite.tasks.smat import RANGES, SmatTask, interval_text, range_of_seed

log = logging.getLogger("nalu_suite")

#: the modules the Primer benchmarks per op (nalm-benchmark ``csv_merger.r``), as unit configs
PRIMER_MODULES: dict[str, tuple[str, ...]] = {
    "add": ("nac", "nalu", "nau", "inalu", "gnalu"),
    "sub": ("nac", "nalu", "nau", "inalu", "gnalu"),
    "mul": ("nac_mul", "nalu", "nmu", "npu", "realnpu", "inalu", "gnalu"),
    "div": ("nac_mul", "nalu", "npu", "realnpu", "inalu", "gnalu"),
}
#: the Division paper's units (its input-redundancy benchmark, ``--task division``)
DIVISION_MODULES = ("nru", "nmru", "realnpu_mod")
SUCCESS = success_name(SmatTask.success_metric)
CSV_FIELDS = (
    "op",
    "input_size",
    "module",
    "range",
    "interpolation",
    "extrapolation",
    "seeds",
    "successes",
    "rate",
    "ci_low",
    "ci_high",
    "solved_at_median",
    "sparsity_error_solved_mean",
    "threshold",
    "extrap_mse_median",
    "diverged",
)


def default_modules(op: str, task: str) -> tuple[str, ...]:
    return DIVISION_MODULES if task == "division" else PRIMER_MODULES[op]


def cell_rows(results: dict, op: str, module: str, ranges: list[int], seeds_per_range: int) -> list[dict]:
    """Split one module's run (``results.json``'s content) into one summary row per range."""
    task_cfg = {"range": ranges, "seeds_per_range": seeds_per_range}
    by_range: dict[int, list[dict]] = {r: [] for r in ranges}
    for row in results["replicas"]:
        by_range[range_of_seed(task_cfg, int(row["seed"]))].append(row)
    out = []
    for number, rows in by_range.items():
        k = sum(float(r.get(SUCCESS, 0.0)) > 0.5 for r in rows)
        low, high = wilson_interval(k, len(rows))
        solved = [r for r in rows if float(r.get(SUCCESS, 0.0)) > 0.5]
        solved_at = [r["solved_at"] for r in solved if not math.isnan(r.get("solved_at", math.nan))]
        sparsity = [r["sparsity_error"] for r in solved]
        mse = [r[SmatTask.success_metric] for r in rows if SmatTask.success_metric in r]
        interp, extrap = RANGES[number]
        out.append(
            {
                "op": op,
                "input_size": None,
                "module": module,
                "range": number,
                "interpolation": interval_text(interp),
                "extrapolation": interval_text(extrap),
                "seeds": len(rows),
                "successes": k,
                "rate": k / len(rows) if rows else math.nan,
                "ci_low": low,
                "ci_high": high,
                "solved_at_median": statistics.median(solved_at) if solved_at else math.nan,
                "sparsity_error_solved_mean": statistics.fmean(sparsity) if sparsity else math.nan,
                "threshold": rows[0].get("success_threshold", math.nan) if rows else math.nan,
                "extrap_mse_median": statistics.median(mse) if mse else math.nan,
                "diverged": sum("diverged_at" in r for r in rows),
            }
        )
    return out


def run_smat(
    op: str,
    modules: list[str],
    ranges: list[int],
    seeds_per_range: int,
    out: Path,
    extra: list[str],
    task: str = "smat",
    seed: int = 0,
) -> list[dict]:
    """Train the modules (lockstep, all ranges in one run each); write the files; return the cell rows."""
    replicas = seeds_per_range * len(ranges)
    range_value = "[" + ",".join(map(str, ranges)) + "]"
    cells = [
        (
            [
                f"task={task}",
                f"task.op={op}",
                f"unit={module}",
                f"task.range={range_value}",
                f"task.seeds_per_range={seeds_per_range}",
                f"replicas={replicas}",
                f"seed={seed}",
                *extra,
            ],
            out / f"unit={module}",
        )
        for module in modules
    ]
    input_size = _input_size(cells[0][0])  # composed before training: a bad override fails here, not after
    started = time.time()
    desc = f"{task} {op}: {len(modules)} modules x {len(ranges)} ranges x {seeds_per_range} seeds"
    results = train_cells(cells, desc=desc)
    wall = time.time() - started
    rows = []
    for module, result in zip(modules, results, strict=True):
        for row in cell_rows(result, op, module, ranges, seeds_per_range):
            rows.append(row | {"input_size": input_size})
    write_csv(rows, out / "cells.csv")
    write_table(rows, out / "table.md", f"{task} {op}, wall {wall:.0f} s")
    plot_heatmap(rows, out / "success.png", f"{task}: {op}, input size {input_size}")
    log.info("%s %s: %d cells in %.0f s; table %s", task, op, len(rows), wall, out / "table.md")
    return rows


def _input_size(overrides: list[str]) -> int:
    from nalu_suite.config import compose

    return int(compose(overrides).task.input_size)


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _rate_text(rate: float, low: float, high: float) -> str:
    return f"{100 * rate:.0f} [{100 * low:.0f}, {100 * high:.0f}]"


def write_table(rows: list[dict], path: Path, title: str) -> Path:
    """``table.md``: success % [Wilson 95%] per module (rows) and range (columns), then the average over
    the ranges (the Division paper's headline number) and the pooled interval."""
    ranges = sorted({r["range"] for r in rows})
    modules = list(dict.fromkeys(r["module"] for r in rows))
    cell = {(r["module"], r["range"]): r for r in rows}
    lines = [
        f"{title}. Success % [Wilson 95% interval] over {rows[0]['seeds']} seeds per cell; "
        "ranges as numbered in docs/benchmarks.md.",
        "",
        "| module | "
        + " | ".join(f"{n}: {RANGES[n][0][0][0]:g}..{RANGES[n][0][-1][1]:g}" for n in ranges)
        + " | average |",
        "|---|" + "---|" * (len(ranges) + 1),
    ]
    for module in modules:
        cells = [cell[(module, n)] for n in ranges]
        k, n = sum(c["successes"] for c in cells), sum(c["seeds"] for c in cells)
        texts = [_rate_text(c["rate"], c["ci_low"], c["ci_high"]) for c in cells]
        lines.append(
            f"| `{module}` | " + " | ".join(texts) + f" | {_rate_text(k / n, *wilson_interval(k, n))} |"
        )
    lines += ["", "Median solved-at step of the solved seeds:", ""]
    lines.append("| module | " + " | ".join(str(n) for n in ranges) + " |")
    lines.append("|---|" + "---|" * len(ranges))
    for module in modules:
        at = [cell[(module, n)]["solved_at_median"] for n in ranges]
        lines.append(
            f"| `{module}` | " + " | ".join("–" if math.isnan(a) else f"{a:,.0f}" for a in at) + " |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_heatmap(rows: list[dict], path: Path, title: str) -> Path:
    """The module x range heat map of the success rates, each cell labelled ``rate`` and its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ranges = sorted({r["range"] for r in rows})
    modules = list(dict.fromkeys(r["module"] for r in rows))
    cell = {(r["module"], r["range"]): r for r in rows}
    grid = np.array([[100 * cell[(m, n)]["rate"] for n in ranges] for m in modules])
    fig, ax = plt.subplots(figsize=(1.1 * len(ranges) + 2, 0.6 * len(modules) + 1.6))
    ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    for i, m in enumerate(modules):
        for j, n in enumerate(ranges):
            c = cell[(m, n)]
            ax.text(
                j,
                i,
                f"{100 * c['rate']:.0f}\n[{100 * c['ci_low']:.0f},{100 * c['ci_high']:.0f}]",
                ha="center",
                va="center",
                fontsize=7,
            )
    ax.set_xticks(range(len(ranges)), [interval_text(RANGES[n][0]) for n in ranges], rotation=35, ha="right")
    ax.set_yticks(range(len(modules)), modules)
    ax.set_xlabel("interpolation range (success %, [Wilson 95%])")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
