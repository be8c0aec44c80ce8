"""Accuracy against digits per literal for a program_eval multirun: one line per configuration, seeds pooled.

    python scripts/plot_program_eval.py logs/program_eval/multiruns/2026-11-22_10-00-00
    python scripts/plot_program_eval.py DIR --metric digit_acc --out docs/figures/program_eval_digit_acc.png

Reads each job's ``results.json`` (``test/d{k}/<metric>``) and groups jobs as ``scripts/report.py`` does (all
overrides but the seed, or ``--group-by``). Draws the mean over seeds with the min-max range shaded. Writes
``DIR/accuracy_vs_digits_<metric>.png`` unless ``--out`` is given.
"""

from __future__ import annotations

import re
from pathlib import Path

from nalu_suite.report import group_jobs, load_jobs, plot_parser

SPLIT = re.compile(r"^test/d(\d+)/(\w+)$")


def curves(root: Path, metric: str, group_by: list[str] | None) -> dict[str, dict[int, list[float]]]:
    """``{configuration label: {digits: [value per seed]}}`` for ``test/d{digits}/{metric}``."""
    jobs = load_jobs(root)
    if not jobs:
        raise SystemExit(f"error: no results.json under {root}; is it a finished multirun directory?")
    out: dict[str, dict[int, list[float]]] = {}
    for group in group_jobs(jobs, group_by):
        points: dict[int, list[float]] = {}
        for job in group.jobs:
            for name, value in job.results.items():
                match = SPLIT.match(name)
                if match and match.group(2) == metric:
                    points.setdefault(int(match.group(1)), []).append(float(value))
        if points:
            out[group.label()] = dict(sorted(points.items()))
    if not out:
        raise SystemExit(f"error: no test/d<k>/{metric} metric in the results under {root}")
    return out


def plot(data: dict[str, dict[int, list[float]]], metric: str, path: Path, train_digits: int = 2) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    digits = sorted({k for points in data.values() for k in points})
    for label, points in sorted(data.items()):
        ks = sorted(points)
        mean = [sum(points[k]) / len(points[k]) for k in ks]
        line = ax.plot(ks, mean, "o-", label=f"{label} (n={len(points[ks[0]])})")[0]
        ax.fill_between(
            ks, [min(points[k]) for k in ks], [max(points[k]) for k in ks], color=line.get_color(), alpha=0.15
        )
    ax.axvspan(min(digits) - 0.5, train_digits + 0.5, color="0.92", zorder=0, label="training digits")
    ax.set(xlabel="digits per literal", ylabel=metric, ylim=(-0.02, 1.02), xticks=digits)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main() -> None:
    parser = plot_parser(
        __doc__,
        "--metric",
        "exact",
        "exact (default), digit_acc or mae",
        "PNG path (default: DIR/accuracy_vs_digits_<metric>.png)",
    )
    args = parser.parse_args()
    if not args.multirun_dir.is_dir():
        raise SystemExit(f"error: {args.multirun_dir} is not a directory")
    group_by = [x.strip() for x in args.group_by.split(",") if x.strip()] if args.group_by else None
    out = args.out or args.multirun_dir / f"accuracy_vs_digits_{args.metric}.png"
    print(plot(curves(args.multirun_dir, args.metric, group_by), args.metric, out))


if __name__ == "__main__":
    main()
