"""Turn a Hydra multirun directory into a markdown table (``scripts/report.py``).

Each job directory holds ``results.json`` and ``.hydra/overrides.yaml``. Jobs are grouped by their
overrides minus the seed (so seeds pool), or by the keys ``--group-by`` names: a key a job did not
override is read from its resolved ``.hydra/config.yaml`` (a config group such as ``unit`` by its
``name``), so a default run and a run that names the same value group together. Each metric is shown
as mean ± std over the group.
Metrics ending in ``/success`` are shown as Madsen & Johansen report them: the success rate with
its 95% Wilson interval; ``solved_at`` as the median over successful runs.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from nalu_suite.stats import mean_std, median_or_none, wilson_interval

IGNORED_OVERRIDES = ("seed", "hydra.", "paths.", "logger", "callbacks", "trainer.devices", "replicas")


@dataclass
class Job:
    path: Path
    overrides: dict[str, str]
    results: dict[str, float]

    @cached_property
    def config(self) -> dict | None:
        """The job's resolved ``.hydra/config.yaml`` (``None`` if it has none), read once."""
        config_path = self.path / ".hydra" / "config.yaml"
        return yaml.safe_load(config_path.read_text()) if config_path.exists() else None

    def setting(self, key: str) -> str:
        """The job's value of ``key``: its override, else its resolved config's (``-`` if neither)."""
        if key in self.overrides:
            return self.overrides[key]
        value = self.config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, dict):
            value = value.get("name")
        return "-" if value is None else str(value)


@dataclass
class Group:
    key: tuple[tuple[str, str], ...]
    jobs: list[Job] = field(default_factory=list)

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key) or "(defaults)"

    def values(self, metric: str) -> list[float]:
        out = []
        for job in self.jobs:
            for row in _rows(job.results):
                if metric in row and row[metric] is not None:
                    out.append(float(row[metric]))
        return out


def _rows(results: dict) -> list[dict]:
    """A job's results as one row per seed: ``replicas`` runs store a list under ``"replicas"``."""
    if isinstance(results.get("replicas"), list):
        return results["replicas"]
    return [results]


def unfinished_jobs(root: Path) -> list[Path]:
    """Job directories (they hold ``.hydra/``) without a results.json: crashed or still running."""
    return sorted(p.parent for p in root.rglob(".hydra") if not (p.parent / "results.json").exists())


def load_jobs(root: Path) -> list[Job]:
    jobs = []
    for results_path in sorted(root.rglob("results.json")):
        job_dir = results_path.parent
        overrides_path = job_dir / ".hydra" / "overrides.yaml"
        overrides = {}
        if overrides_path.exists():
            for item in yaml.safe_load(overrides_path.read_text()) or []:
                k, _, v = item.partition("=")
                overrides[k.lstrip("+~")] = v
        try:
            results = json.loads(results_path.read_text())
        except json.JSONDecodeError as err:
            raise SystemExit(f"error: {results_path} is not valid JSON ({err})") from err
        jobs.append(Job(job_dir, overrides, results))
    return jobs


def plot_parser(
    description: str, metric: str, default: str, metric_help: str, out_help: str
) -> argparse.ArgumentParser:
    """The plot scripts' CLI: ``MULTIRUN_DIR``, one metric option, ``--group-by`` and ``--out``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("multirun_dir", type=Path)
    parser.add_argument(metric, default=default, help=metric_help)
    parser.add_argument("--group-by", help="comma-separated override keys (default: all overrides but seed)")
    parser.add_argument("--out", type=Path, help=out_help)
    return parser


def group_jobs(jobs: list[Job], group_by: list[str] | None = None) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for job in jobs:
        if group_by:
            key = tuple((k, job.setting(k)) for k in group_by)
        else:
            key = tuple(
                sorted((k, v) for k, v in job.overrides.items() if not k.startswith(IGNORED_OVERRIDES))
            )
        groups.setdefault(key, Group(key)).jobs.append(job)
    return list(groups.values())


def default_metrics(jobs: list[Job]) -> list[str]:
    names: set[str] = set()
    for job in jobs:
        for row in _rows(job.results):
            names.update(k for k, v in row.items() if isinstance(v, (int, float)))
    preferred = [n for n in sorted(names) if n.startswith(("train/", "val/", "test/"))]
    preferred = [n for n in preferred if n != "train/loss"]
    if any(n.endswith("/success") for n in names):
        preferred += ["solved_at", "sparsity_error"]
    return preferred


def fmt(value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.4g}"


def cell(group: Group, metric: str) -> str:
    values = group.values(metric)
    if not values:
        return "–"
    if metric.endswith("/success"):
        k, n = sum(v > 0.5 for v in values), len(values)
        lo, hi = wilson_interval(k, n)
        return f"{100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}] ({k}/{n})"
    if metric == "solved_at":
        median = median_or_none([v for v in values if not math.isnan(v)])
        return fmt(median) if median is not None else "–"
    mean, std = mean_std(values)
    return f"{fmt(mean)} ± {fmt(std)}"


def markdown_table(groups: list[Group], metrics: list[str]) -> str:
    header = ["configuration", "runs", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in sorted(groups, key=lambda g: g.label()):
        runs = sum(len(_rows(j.results)) for j in group.jobs)
        lines.append("| " + " | ".join([group.label(), str(runs), *(cell(group, m) for m in metrics)]) + " |")
    return "\n".join(lines)


def report(root: Path, metrics: list[str] | None = None, group_by: list[str] | None = None) -> str:
    if not root.is_dir():
        raise SystemExit(f"error: {root} is not a directory")
    jobs = load_jobs(root)
    if not jobs:
        raise SystemExit(f"error: no results.json under {root}; is it a finished multirun directory?")
    groups = group_jobs(jobs, group_by)
    table = markdown_table(groups, metrics or default_metrics(jobs))
    missing = unfinished_jobs(root)
    if missing:
        names = ", ".join(str(p.relative_to(root)) for p in missing[:5])
        table += (
            f"\n\n{len(missing)} job(s) without results.json (crashed or unfinished) not counted: {names}"
        )
    diverged = sum(1 for job in jobs for row in _rows(job.results) if row.get("diverged"))
    if diverged:
        table += f"\n\n{diverged} run(s) diverged: failures in the success rates, with no other metrics."
    return table
