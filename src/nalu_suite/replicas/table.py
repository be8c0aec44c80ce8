"""The static-task success table: every op x unit, R seeds each, one command.

    nalu-table --out logs/static_table                       # 6 ops x 10 units x 100 seeds
    nalu-table --out logs/static_table --jobs 2 threads=1    # two ops at a time
    nalu-table --ops add,mul --units nau,nmu --replicas 20 --out /tmp/t
    nalu-report logs/static_table --metrics test/extrap/success,solved_at --group-by task.op,unit

Each cell is what ``nalu-train task=static_arith task.op=OP unit=UNIT replicas=R OVERRIDES`` would
train (the same configs, seeds, data and results): the task's shared recipe (the per-op recipes of
``task.recipes`` belong to ``unit=auto``), with ``OP_SETTINGS[op]`` (empty now) as further overrides.
The cells of one op differ only in the unit, so they read the **same** training batches and evaluation
sets: the batches are drawn once per op and every unit's replicas step on them in lockstep, which saves
most of the data generation (the dominant cost of these tiny models). Every cell gets its own
directory with ``results.json`` and ``.hydra/overrides.yaml``, so ``nalu-report`` reads the
table like a Hydra multirun. A figure of the success rates (``success.png``) and a markdown table of
them (``table.md``, units x ops) are written next to them. ``--jobs N`` trains N ops at a time in
worker processes (one op per process, each op's cells as above; give ``threads=1`` so the processes
do not share cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf, open_dict

from nalu_suite.config import compose
from nalu_suite.errors import ConfigError
from nalu_suite.figures import save_figure
from nalu_suite.parent_death import die_with_parent
from nalu_suite.replicas.engine import ReplicaRun
from nalu_suite.replicas.fit import fit_lockstep, replica_results, save_run
from nalu_suite.replicas.settings import replica_settings
from nalu_suite.results import success_name
from nalu_suite.runtime import configure_torch, validate
from nalu_suite.tasks.static_arith import StaticArithTask

log = logging.getLogger("nalu_suite")

OPS = ("add", "sub", "mul", "div", "square", "sqrt")
#: the table's rows: Madsen & Johansen's models (NAC+ / NAC• and NAU / NMU are the additive and the
#: multiplicative member of a pair) plus iNALU, NPU, RealNPU and the Linear / ReLU6 baselines
UNITS = ("nalu", "nac", "nac_mul", "nau", "nmu", "inalu", "npu", "realnpu", "linear", "relu6")

#: the summary a cell is judged by: the extrapolation success rate (``results.summarize``)
RATE = f"{success_name(StaticArithTask.success_metric)}_rate"

#: overrides of the task defaults per op (none: every cell trains with ``task=static_arith``'s defaults,
#: the shared recipe of conf/task/static_arith.yaml, with the cell's unit in place of ``unit=auto``)
OP_SETTINGS: dict[str, list[str]] = {op: [] for op in OPS}


def cell_overrides(op: str, unit: str, replicas: int, seed: int, extra: list[str]) -> list[str]:
    """The ``train.py`` overrides of one cell; ``extra`` replaces settings of the same key."""
    keys = {item.split("=", 1)[0].lstrip("+~") for item in extra}
    settings = [item for item in OP_SETTINGS[op] if item.split("=", 1)[0] not in keys]
    return [
        "task=static_arith",
        f"task.op={op}",
        f"unit={unit}",
        f"replicas={replicas}",
        f"seed={seed}",
        *settings,
        *extra,
    ]


def run_op(
    op: str, units: list[str], replicas: int, seed: int, extra: list[str], out: Path, position: int = 0
) -> None:
    """Train every unit's R replicas of ``op`` in lockstep on one shared stream; write each cell."""
    cells = [
        (cell_overrides(op, unit, replicas, seed, extra), out / f"op={op},unit={unit}") for unit in units
    ]
    train_cells(cells, desc=f"{op}: {len(units)} units x {replicas} seeds", position=position)


def train_cells(cells: list[tuple[list[str], Path]], desc: str, position: int = 0) -> list[dict]:
    """Train the cells ``(train.py overrides, directory)`` in lockstep on one shared training stream (they
    must differ only in what does not change the data: unit, optimiser, regulariser, clipping) and write
    each cell's files; return each cell's results (``results.json``'s content)."""
    shared: dict = {}
    configs = []
    started = time.time()
    for cell, cell_dir in cells:
        cfg = compose(["logger=none", *cell])
        with open_dict(cfg):
            cfg.paths.output_dir = str(cell_dir)
        validate(cfg)
        configs.append(cfg)
    # threads before the runs draw their evaluation sets: two ops' processes building their runs with
    # torch's default threads (one per core each) took 2-8x longer on two cores
    configure_torch(configs[0])
    runs = [ReplicaRun(cfg, replica_settings(cfg), shared=shared) for cfg in configs]
    settings = runs[0].settings
    for run in runs[1:]:
        same = (run.settings.max_steps, run.settings.val_check_interval, run.data_key)
        if same != (settings.max_steps, settings.val_check_interval, runs[0].data_key):
            raise ConfigError(f"{desc}: the cells' runs differ in steps, validation or data; cannot share")
    first = [runs[0].batches.streams[0].draw_chunk(0), runs[-1].batches.streams[0].draw_chunk(0)]
    if not all(torch.equal(a, b) for a, b in zip(*first, strict=True)):
        raise ConfigError(f"{desc}: the cells' training streams differ; cannot share them")

    batches = iter(runs[0].batches)
    try:
        fit_lockstep(runs, batches, desc=desc, position=position)
    finally:
        batches.close()
    return [
        _write_cell(run, cell_dir, cell, cfg, time.time() - started)
        for run, (cell, cell_dir), cfg in zip(runs, cells, configs, strict=True)
    ]


_WORKER_POSITION = 0


def _init_worker(counter, parent_pid: int) -> None:
    """Worker process setup: it ends with the parent (``die_with_parent``), logging, and a progress-bar
    line of its own (``counter`` numbers them)."""
    global _WORKER_POSITION
    die_with_parent(parent_pid)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    with counter.get_lock():
        _WORKER_POSITION = counter.value
        counter.value += 1


def _run_op_in_worker(op: str, *args) -> str:
    run_op(op, *args, position=_WORKER_POSITION)
    return op


def run_ops(
    ops: list[str], units: list[str], replicas: int, seed: int, extra: list[str], out: Path, jobs: int
) -> None:
    """``run_op`` for every op: in this process (``jobs=1``) or ``jobs`` ops at a time in worker processes."""
    started = time.time()
    if jobs <= 1 or len(ops) == 1:
        for op in ops:
            run_op(op, units, replicas, seed, extra, out)
            log.info("op %s done after %.0f s in total", op, time.time() - started)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    counter = context.Value("i", 0)
    workers = min(jobs, len(ops))
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(counter, os.getpid())
    ) as pool:
        futures = [pool.submit(_run_op_in_worker, op, units, replicas, seed, extra, out) for op in ops]
        for future in as_completed(futures):
            log.info("op %s done after %.0f s in total", future.result(), time.time() - started)


def _write_cell(run: ReplicaRun, cell_dir: Path, overrides: list[str], cfg, wall: float) -> dict:
    """One cell's files, as ``nalu-train ... replicas=R`` writes them, plus Hydra's ``.hydra/`` records."""
    results = replica_results(run, wall)
    (cell_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (cell_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    OmegaConf.save(cfg, cell_dir / ".hydra" / "config.yaml", resolve=True)
    save_run(run, results, cell_dir)
    rate = results.get(f"{success_name(run.task.success_metric)}_rate", math.nan)
    log.info(
        "%s: success %.0f%%, solved_at median %s", cell_dir.name, 100 * rate, results["solved_at_median"]
    )
    return results


def plot_success(out: Path) -> Path | None:
    """``success.png``: success rate (with its Wilson interval) per op and unit, from the cells' results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = _read_cells(out)
    if not cells:
        return None
    ops = [op for op in OPS if any(k[0] == op for k in cells)]
    units = [u for u in UNITS if any(k[1] == u for k in cells)] or sorted({k[1] for k in cells})
    fig, ax = plt.subplots(figsize=(1.6 * len(ops) + 2, 4))
    width = 0.8 / len(units)
    for j, unit in enumerate(units):
        xs, ys, lo, hi = [], [], [], []
        for i, op in enumerate(ops):
            r = cells.get((op, unit))
            if r is None or RATE not in r:
                continue
            xs.append(i + (j - (len(units) - 1) / 2) * width)
            ys.append(100 * r[RATE])
            lo.append(max(0.0, ys[-1] - 100 * r[f"{RATE}_ci_low"]))
            hi.append(max(0.0, 100 * r[f"{RATE}_ci_high"] - ys[-1]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=unit)
    ax.set_xticks(range(len(ops)), ops)
    ax.set_ylabel("success rate (%), 95% Wilson interval")
    ax.set_ylim(0, 105)
    ax.legend(ncol=5, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    return save_figure(fig, out / "success.png")


def _read_cells(out: Path) -> dict[tuple[str, str], dict]:
    cells = {}
    for path in sorted(out.glob("op=*,unit=*/results.json")):
        op, unit = (part.split("=", 1)[1] for part in path.parent.name.split(","))
        cells[(op, unit)] = json.loads(path.read_text())
    return cells


def write_summary(out: Path) -> Path | None:
    """``table.md``: per unit (rows) and op (columns) the extrapolation success rate with its Wilson 95%
    interval and the median ``solved_at``, from the cells' ``results.json``."""
    cells = _read_cells(out)
    if not cells:
        return None
    ops = [op for op in OPS if any(k[0] == op for k in cells)]
    units = [u for u in UNITS if any(k[1] == u for k in cells)]
    units += sorted({k[1] for k in cells} - set(units))
    lines = [
        "| unit | " + " | ".join(ops) + " |",
        "|---|" + "---|" * len(ops),
    ]
    for unit in units:
        row = []
        for op in ops:
            r = cells.get((op, unit))
            if r is None or RATE not in r:
                row.append("–")
                continue
            rate, low, high = (100 * r[f"{RATE}{s}"] for s in ("", "_ci_low", "_ci_high"))
            solved = r.get("solved_at_median")
            at = f", {solved:,.0f}" if solved is not None and math.isfinite(solved) else ""
            row.append(f"{rate:.0f}% [{low:.0f}, {high:.0f}]{at}")
        lines.append(f"| `{unit}` | " + " | ".join(row) + " |")
    replicas = {int(r.get("replicas_count", 0)) for r in cells.values()}
    note = (
        f"Extrapolation success over {', '.join(map(str, sorted(replicas)))} seeds per cell "
        "[Wilson 95% interval], then the median `solved_at` of the solved seeds."
    )
    path = out / "table.md"
    path.write_text(note + "\n\n" + "\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommand: nalu-table paper-table1 --out DIR   the NALU paper's Table 1, static and "
        "recurrent halves in the paper's normalised error (docs/table1.md; nalu-table paper-table1 --help)",
    )
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated (default: {','.join(OPS)})")
    parser.add_argument(
        "--units", default=",".join(UNITS), help=f"comma-separated (default: {','.join(UNITS)})"
    )
    parser.add_argument("--replicas", type=int, default=100, help="seeds per cell (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--jobs", type=int, default=1, help="ops trained at a time, one worker process each (default 1)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra train.py overrides for every cell, e.g. threads=1"
    )
    args = parser.parse_args(argv)
    ops = [o for o in args.ops.split(",") if o]
    units = [u for u in args.units.split(",") if u]
    for op in ops:
        if op not in OP_SETTINGS:
            parser.error(f"unknown op {op!r}; valid: {', '.join(OPS)}")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: must be at least 1")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    run_ops(ops, units, args.replicas, args.seed, args.overrides, args.out, args.jobs)
    figure = plot_success(args.out)
    summary = write_summary(args.out)
    log.info(
        "table written to %s in %.0f s%s%s",
        args.out,
        time.time() - started,
        f"; figure {figure}" if figure else "",
        f"; markdown {summary}" if summary else "",
    )


if __name__ == "__main__":
    main()
