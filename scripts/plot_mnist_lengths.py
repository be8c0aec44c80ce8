"""Error against sequence length for an MNIST counting / addition multirun (paper §4.2, Table 2).

    python scripts/plot_mnist_lengths.py logs/mnist_add/multiruns/2026-11-22_10-00-00
    python scripts/plot_mnist_lengths.py DIR --metrics rel_err,acc,mae --out docs/figures/mnist_add.png

One line per group of jobs (the overrides except the seed, as in ``scripts/report.py``), the mean over
seeds with a band from the smallest to the largest seed, for every ``test/len{L}/{metric}`` in the jobs'
``results.json`` (jobs that diverged, and so have none, are left out and counted in the legend).
Length on a log scale; error metrics (``rel_err``, ``mae``, ``mse``) also on a log scale.
Writes ``DIR/mnist_lengths.png`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import re
import sys

from nalu_suite.report import group_jobs, load_jobs, plot_parser

LENGTH_METRIC = re.compile(r"^test/len(\d+)/(\w+)$")
LOG_METRICS = ("rel_err", "mae", "mse")


def lengths_of(results: dict, metric: str) -> list[int]:
    found = (LENGTH_METRIC.match(name) for name in results)
    return sorted({int(m.group(1)) for m in found if m and m.group(2) == metric})


def main(argv: list[str] | None = None) -> int:
    parser = plot_parser(
        __doc__,
        "--metrics",
        "rel_err,acc",
        "comma-separated, e.g. rel_err,acc,mae",
        "PNG path (default: MULTIRUN_DIR/mnist_lengths.png)",
    )
    args = parser.parse_args(argv)

    jobs = load_jobs(args.multirun_dir)
    if not jobs:
        print(f"error: no results.json under {args.multirun_dir}", file=sys.stderr)
        return 1
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    groups = group_jobs(jobs, [k.strip() for k in args.group_by.split(",")] if args.group_by else None)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for group in groups:
            finished = [
                job for job in group.jobs if lengths_of(job.results, metric)
            ]  # diverged jobs have none
            if not finished:
                continue
            lengths = lengths_of(finished[0].results, metric)
            rows = [[float(job.results[f"test/len{n}/{metric}"]) for job in finished] for n in lengths]
            means = [sum(r) / len(r) for r in rows]
            label = f"{group.label()} ({len(finished)} of {len(group.jobs)} seeds)"
            line = ax.plot(lengths, means, marker="o", label=label)[0]
            ax.fill_between(lengths, [min(r) for r in rows], [max(r) for r in rows], alpha=0.15,
                            color=line.get_color())  # fmt: skip
        ax.set_xscale("log")
        if metric in LOG_METRICS:
            ax.set_yscale("log")
        ax.set_xlabel("sequence length (trained on 10)")
        ax.set_ylabel(metric)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    task = next(
        (p for p in args.multirun_dir.resolve().parts if p.startswith("mnist_")), args.multirun_dir.name
    )
    fig.suptitle(f"{task}: test error vs sequence length (mean, min-max over seeds)")
    fig.tight_layout()
    out = args.out or args.multirun_dir / "mnist_lengths.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
