"""The NALU paper's Table 1 (Trask et al. 2018, §4.1), both halves, in one command (docs/table1.md).

    nalu-table paper-table1 --out logs/table1                  # the default budget (12 min on 2 cores)
    nalu-table paper-table1 --out logs/t1 --halves recurrent --ops add --units nau,lstm --replicas 2 \\
        --recurrent-steps 200

Each cell (half, op, unit) is what ``nalu-train task=<static_arith|recurrent_arith> task.op=OP unit=UNIT
replicas=R`` trains with the task's **shared** recipe (the per-op recipes belong to ``unit=auto``) at this
table's budget: ``--static-steps`` / ``--recurrent-steps`` steps, the regulariser ramp scaled to the same
fractions of the run as the task's own. The units of one op step in lockstep on one shared data stream
(``replicas.table.train_cells``); every cell is a directory ``<out>/<half>/op=OP,unit=UNIT`` with
``results.json``, so ``nalu-report`` and ``nalu-table``'s own ``table.md`` / ``success.png`` read it too.
Ops whose cells all have results already are not trained again (delete them to retrain).

Each table cell is the paper's metric, the error normalised so that the same architecture at random
initialisation scores 100 and a perfect model 0 (``test/{interp,extrap}/normalized``, the tasks' own
random baseline): the mean over the seeds, the median beside it, and on extrapolation rows Madsen &
Johansen's success rate. The paper's numbers (``PAPER``; recalled by the notes the project started
from, not checked against the PDF) stand beside its four columns. Written: ``table1.md``,
``table1.csv``, ``table1.png``; the wall time is stated in ``table1.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import platform
import statistics
import time
from pathlib import Path

from nalu_suite.figures import save_figure
from nalu_suite.replicas.table import OPS, plot_success, train_cells, write_summary

log = logging.getLogger("nalu_suite")

#: the task of each half of the table
TASKS = {"static": "static_arith", "recurrent": "recurrent_arith"}
#: the paper's columns (static: ReLU6, None, NAC, NALU; recurrent: LSTM, ReLU RNN, NAC, NALU)
PAPER_UNITS = {"static": ("relu6", "linear", "nac", "nalu"), "recurrent": ("lstm", "rnn_relu", "nac", "nalu")}
#: the static appendix's further activations, and the successors of NAC / NALU
APPENDIX_UNITS = ("tanh", "sigmoid", "softsign", "selu", "elu", "relu")
SUCCESSOR_UNITS = ("nau", "nmu", "inalu", "npu", "realnpu")
UNITS = {
    "static": PAPER_UNITS["static"] + APPENDIX_UNITS + SUCCESSOR_UNITS,
    "recurrent": PAPER_UNITS["recurrent"] + SUCCESSOR_UNITS,
}
LABELS = {
    "linear": "None",
    "relu6": "ReLU6",
    "rnn_relu": "ReLU (RNN)",
    "lstm": "LSTM",
    "nac": "NAC",
    "nalu": "NALU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "softsign": "Softsign",
    "selu": "SELU",
    "elu": "ELU",
    "relu": "ReLU",
    "nau": "NAU",
    "nmu": "NAU→NMU",
    "inalu": "iNALU",
    "npu": "NAU→NPU",
    "realnpu": "NAU→RealNPU",
}
OP_LABELS = {"add": "a + b", "sub": "a − b", "mul": "a × b", "div": "a / b", "square": "a²", "sqrt": "√a"}
SPLITS = {"interp": "Interpolation", "extrap": "Extrapolation"}
#: the default budget: seeds per cell and steps per run of each half (docs/table1.md)
DEFAULT_REPLICAS = 10
DEFAULT_STEPS = {"static": 500, "recurrent": 500}
#: validations per run (the best-validation weights are tested; solved_at is not the table's concern)
VALIDATIONS = 5
#: settings of the half's task changed for the table's budget: the length-1000 sets are 100x the size of the
#: training sequences, so they hold 100 sequences (not 1000), the random baseline averages 3 draws, and the
#: length-100 test (not in the paper's table) is left out
HALF_SETTINGS = {
    "static": [],
    "recurrent": ["task.extrap_eval_size=100", "task.baseline_draws=3", "task.test_lengths=[]"],
}


def _paper_static() -> dict[tuple[str, str, str], str]:
    rows = {  # op: (ReLU6, None, NAC, NALU), interpolation then extrapolation
        "interp": {
            "add": ("0.2", "0.0", "0.0", "0.0"),
            "sub": ("0.0", "0.0", "0.0", "0.0"),
            "mul": ("3.2", "20.9", "21.4", "0.0"),
            "div": ("4.2", "35.0", "37.1", "5.3"),
            "square": ("0.7", "4.3", "22.4", "0.0"),
            "sqrt": ("0.5", "2.2", "3.6", "0.0"),
        },
        "extrap": {
            "add": ("42.6", "0.0", "0.0", "0.0"),
            "sub": ("29.0", "0.0", "0.0", "0.0"),
            "mul": ("10.1", "29.5", "33.3", "0.0"),
            "div": ("37.2", "52.3", "61.3", "0.7"),
            "square": ("47.0", "25.1", "53.3", "0.0"),
            "sqrt": ("13.3", "20.0", "16.4", "0.0"),
        },
    }
    return {
        (split, op, unit): value
        for split, ops in rows.items()
        for op, values in ops.items()
        for unit, value in zip(PAPER_UNITS["static"], values, strict=True)
    }


def _paper_recurrent() -> dict[tuple[str, str, str], str]:
    """Only the cells the reference recalls (low confidence: "trust the pattern, not the cells")."""
    out: dict[tuple[str, str, str], str] = {}
    for op in OPS:
        for unit in ("lstm", "rnn_relu", "nalu"):
            out[("interp", op, unit)] = "≈0.0"
        out[("interp", op, "nac")] = "≈1–2" if op in ("mul", "square", "sqrt") else "≈0.0"
        out[("extrap", op, "lstm")] = "≈96–98"
    out |= {
        ("extrap", "add", "lstm"): "≈96.1",
        ("extrap", "sub", "lstm"): "≈97.0",
        ("extrap", "mul", "lstm"): "≈98.2",
        ("extrap", "add", "rnn_relu"): "≈85.5",
        ("extrap", "sub", "rnn_relu"): "≈70.9",
        ("extrap", "mul", "rnn_relu"): "≈97.9",
        ("extrap", "add", "nac"): "0.0",
        ("extrap", "sub", "nac"): "0.0",
        ("extrap", "mul", "nac"): "≈88.4",
        ("extrap", "square", "nac"): ">100",
        ("extrap", "div", "nac"): ">999",
        ("extrap", "div", "nalu"): ">999",
    }
    for op in ("add", "sub", "mul", "square", "sqrt"):
        out[("extrap", op, "nalu")] = "0.0"
    return out


#: the paper's Table 1 (recalled: static medium confidence, recurrent low; paper-tasks.md §3.2)
PAPER: dict[str, dict[tuple[str, str, str], str]] = {
    "static": _paper_static(),
    "recurrent": _paper_recurrent(),
}
PAPER_SOURCE = {
    "static": "Trask et al. 2018 Table 1, recalled, not read from the PDF (medium confidence)",
    "recurrent": "Trask et al. 2018 Table 1, recalled, not read from the PDF (low confidence: the pattern, "
    "not the cells)",
}


def budget_overrides(half: str, steps: int) -> list[str]:
    """``trainer.max_steps=steps``, ``VALIDATIONS`` validations, the regulariser ramp at the same fractions
    of the run as in the task's shared recipe (``conf/task/<task>.yaml``) and ``HALF_SETTINGS[half]``."""
    from nalu_suite.config import compose

    cfg = compose([f"task={TASKS[half]}", "unit=nau"])
    default_steps = int(cfg.trainer.max_steps)
    overrides = [
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={max(1, steps // VALIDATIONS)}",
        *HALF_SETTINGS[half],
    ]
    reg = cfg.get("regularizer") or {}
    if float(reg.get("weight") or 0):
        for key in ("start", "end"):
            overrides.append(f"regularizer.{key}={round(int(reg[key]) * steps / default_steps)}")
    return overrides


def cell_dir(out: Path, half: str, op: str, unit: str) -> Path:
    return out / half / f"op={op},unit={unit}"


def run_half(
    half: str,
    ops: list[str],
    units: list[str],
    replicas: int,
    seed: int,
    steps: int,
    extra: list[str],
    out: Path,
) -> float:
    """Train the half's cells, one op at a time (its units in lockstep); return the wall time in seconds."""
    started = time.time()
    keys = {item.split("=", 1)[0].lstrip("+~") for item in extra}
    budget = [item for item in budget_overrides(half, steps) if item.split("=", 1)[0] not in keys]
    for op in ops:
        if all((cell_dir(out, half, op, unit) / "results.json").is_file() for unit in units):
            log.info("%s %s: every cell has results already; not trained again", half, op)
            continue
        cells = [
            (
                [
                    f"task={TASKS[half]}",
                    f"task.op={op}",
                    f"unit={unit}",
                    f"replicas={replicas}",
                    f"seed={seed}",
                    *budget,
                    *extra,
                ],
                cell_dir(out, half, op, unit),
            )
            for unit in units
        ]
        train_cells(cells, desc=f"{half} {op}: {len(units)} units x {replicas} seeds")
        log.info("%s %s done after %.0f s", half, op, time.time() - started)
    plot_success(out / half)
    write_summary(out / half)
    return time.time() - started


def cell_stats(results: dict, split: str) -> dict[str, float]:
    """Mean and median over the seeds of ``test/<split>/normalized``; the success rate on extrapolation."""
    values = [
        float(r[f"test/{split}/normalized"]) for r in results["replicas"] if f"test/{split}/normalized" in r
    ]
    values = [v for v in values if not math.isnan(v)]
    out = {
        "seeds": len(results["replicas"]),
        "mean": sum(values) / len(values) if values else math.nan,
        "median": statistics.median(values) if values else math.nan,
    }
    rate = results.get("test/extrap/success_rate")
    if split == "extrap" and rate is not None:
        out |= {
            "success_rate": rate,
            "success_ci_low": results["test/extrap/success_rate_ci_low"],
            "success_ci_high": results["test/extrap/success_rate_ci_high"],
        }
    return out


def collect(out: Path, halves: list[str], ops: list[str], units: dict[str, list[str]]) -> list[dict]:
    """One row per (half, split, op, unit) with results: the statistics and the paper's number."""
    rows = []
    for half in halves:
        for split in SPLITS:
            for op in ops:
                for unit in units[half]:
                    path = cell_dir(out, half, op, unit) / "results.json"
                    if not path.is_file():
                        continue
                    results = json.loads(path.read_text())
                    rows.append(
                        {
                            "half": half,
                            "split": split,
                            "op": op,
                            "unit": unit,
                            "steps": int(results.get("train_steps", 0)),
                            "op_wall_s": float(results.get("wall_time_s", math.nan)),
                            **cell_stats(results, split),
                            "paper": PAPER[half].get((split, op, unit), ""),
                        }
                    )
    return rows


def fmt(value: float) -> str:
    """A normalised error for the table: 3 significant digits, plain up to 10^4."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if math.isinf(value):
        return "inf"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.1e}"


def half_walls(rows: list[dict]) -> dict[str, float]:
    """Each half's wall time: the sum over its ops of the op's time (the units of an op train together, so
    each of its cells' ``results.json`` holds the same ``wall_time_s``), whichever run trained them."""
    per_op: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["half"], r["op"])
        per_op[key] = max(per_op.get(key, 0.0), r["op_wall_s"])
    walls: dict[str, float] = {}
    for (half, _), seconds in per_op.items():
        walls[half] = walls.get(half, 0.0) + seconds
    return walls


def markdown(rows: list[dict], halves: list[str], settings: dict) -> str:
    walls = half_walls(rows)
    lines = [
        "# The NALU paper's Table 1, regenerated (`nalu-table paper-table1`)",
        "",
        "Each cell: the paper's normalised error (100 = the same architecture at random initialisation, "
        "0 = perfect), **mean over the seeds** · median, and on extrapolation rows the success rate "
        "(Madsen & Johansen's ε = 1e-5 criterion). *paper*: the NALU paper's number beside its column.",
        "",
    ]
    for half in halves:
        half_rows = [r for r in rows if r["half"] == half]
        if not half_rows:
            continue
        units = [u for u in UNITS[half] if any(r["unit"] == u for r in half_rows)]
        units += sorted({r["unit"] for r in half_rows} - set(units))
        ops = [op for op in OPS if any(r["op"] == op for r in half_rows)]
        by_key = {(r["split"], r["op"], r["unit"]): r for r in half_rows}
        seeds = sorted({r["seeds"] for r in half_rows})
        steps = sorted({r["steps"] for r in half_rows})
        lines += [
            f"## {half.capitalize()} (`task={TASKS[half]}`)",
            "",
            f"{', '.join(map(str, seeds))} seeds per cell, {', '.join(map(str, steps))} steps each; "
            f"wall time {walls.get(half, math.nan) / 60:.1f} min. Paper numbers: {PAPER_SOURCE[half]}.",
            "",
        ]
        header, rule = ["", ""], ["---", "---"]
        for unit in units:
            header.append(f"`{LABELS.get(unit, unit)}`")
            rule.append("---")
            if unit in PAPER_UNITS[half]:
                header.append("*paper*")
                rule.append("---")
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
        for split, split_label in SPLITS.items():
            for i, op in enumerate(ops):
                cells = [split_label if i == 0 else "", OP_LABELS[op]]
                for unit in units:
                    r = by_key.get((split, op, unit))
                    if r is None:
                        cells.append("–")
                    else:
                        text = f"**{fmt(r['mean'])}** · {fmt(r['median'])}"
                        if "success_rate" in r:
                            text += f" · {100 * r['success_rate']:.0f}%"
                        cells.append(text)
                    if unit in PAPER_UNITS[half]:
                        cells.append(f"*{PAPER[half].get((split, op, unit), '–')}*")
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    total = sum(walls.values())
    lines += [
        f"Wall time: **{total / 60:.1f} min** in all, the sum of every op's training time "
        f"({settings['machine']}), {settings['date']}.",
        f"Written by: `{settings['command']}`",
        "",
    ]
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> Path:
    names = [
        "half",
        "split",
        "op",
        "unit",
        "seeds",
        "steps",
        "mean",
        "median",
        "success_rate",
        "success_ci_low",
        "success_ci_high",
        "paper",
        "op_wall_s",
    ]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot(rows: list[dict], halves: list[str], path: Path) -> Path | None:
    """``table1.png``: per half a heatmap of the median normalised error (log colour scale), ops x units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    halves = [h for h in halves if any(r["half"] == h for r in rows)]
    if not halves:
        return None
    fig, axes = plt.subplots(1, len(halves), figsize=(7 * len(halves), 5.5), squeeze=False)
    for ax, half in zip(axes[0], halves, strict=True):
        half_rows = [r for r in rows if r["half"] == half]
        units = [u for u in UNITS[half] if any(r["unit"] == u for r in half_rows)]
        units += sorted({r["unit"] for r in half_rows} - set(units))
        keys = [(s, op) for s in SPLITS for op in OPS if any(r["op"] == op for r in half_rows)]
        grid = np.full((len(keys), len(units)), np.nan)
        for r in half_rows:
            grid[keys.index((r["split"], r["op"])), units.index(r["unit"])] = r["median"]
        shown = np.clip(np.where(np.isfinite(grid), grid, 1e4), 1e-4, 1e4)
        image = ax.imshow(shown, norm=LogNorm(1e-4, 1e4), cmap="viridis_r", aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, fmt(value), ha="center", va="center", fontsize=6, color="white")
        ax.set_xticks(range(len(units)), [LABELS.get(u, u) for u in units], rotation=60, fontsize=7)
        ax.set_yticks(range(len(keys)), [f"{s} {OP_LABELS[op]}" for s, op in keys], fontsize=7)
        ax.set_title(f"{half}: median normalised error (100 = random init)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04)
    return save_figure(fig, path)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the platform's machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_table(out: Path, halves: list[str], ops: list[str], units: dict, command: str) -> list[Path]:
    """``table1.md``, ``table1.csv`` and ``table1.png`` from the cells' results under ``out``."""
    rows = collect(out, halves, ops, units)
    settings = {
        "machine": f"{os.cpu_count()}-core {cpu_name()}",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "command": command,
    }
    (out / "table1.md").write_text(markdown(rows, halves, settings))
    paths = [out / "table1.md", write_csv(rows, out / "table1.csv")]
    figure = plot(rows, halves, out / "table1.png")
    return paths + ([figure] if figure else [])


def _names(parser: argparse.ArgumentParser, option: str, value: str, valid) -> list[str]:
    names = [v for v in value.split(",") if v]
    for name in names:
        if name not in valid:
            parser.error(f"{option} {name!r} is not valid; choose from: {', '.join(valid)}")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nalu-table paper-table1",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--halves", default="static,recurrent", help="static, recurrent or both (default)")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated (default: {','.join(OPS)})")
    parser.add_argument(
        "--units",
        default=None,
        help="comma-separated units for every half (default: the paper's columns, the static appendix's "
        "activations and the successors NAU, NMU, iNALU, NPU, RealNPU)",
    )
    parser.add_argument(
        "--replicas", type=int, default=DEFAULT_REPLICAS, help=f"seeds per cell (default {DEFAULT_REPLICAS})"
    )
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    for half, steps in DEFAULT_STEPS.items():
        parser.add_argument(
            f"--{half}-steps", type=int, default=steps, help=f"steps per run (default {steps})"
        )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: write table1.md/.csv/.png from the cells under --out (e.g. an unfinished run)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra train.py overrides for every cell, e.g. threads=1"
    )
    args = parser.parse_args(argv)
    halves = _names(parser, "--halves", args.halves, tuple(TASKS))
    ops = _names(parser, "--ops", args.ops, OPS)
    if not halves or not ops:
        parser.error("--halves and --ops need at least one name each")
    from nalu_suite.resources import conf_dir

    unit_configs = sorted(p.stem for p in (conf_dir() / "unit").glob("*.yaml") if p.stem != "auto")
    units = {half: list(UNITS[half]) for half in halves}
    if args.units is not None:
        chosen = _names(parser, "--units", args.units, unit_configs)
        units = {half: chosen for half in halves}
    for option in ("replicas", "static_steps", "recurrent_steps"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} {getattr(args, option)}: must be at least 1")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for half in halves if not args.table_only else []:
        steps = getattr(args, f"{half}_steps")
        run_half(half, ops, units[half], args.replicas, args.seed, steps, args.overrides, args.out)
    command = "nalu-table paper-table1 " + " ".join(argv if argv is not None else [])
    paths = write_table(args.out, halves, ops, units, command.strip())
    log.info("Table 1 written after %.1f min: %s", (time.time() - started) / 60, ", ".join(map(str, paths)))
