"""The grid-world table and figure over runs (Trask et al. 2018, §4.5): success at T = 5..12, 13, 16, 20, 30,
50, 100 per agent and seed, and success against T (mean over seeds per agent) as one PNG.

    python scripts/gridworld_table.py outputs/gridworld/* --out docs/figures/gridworld_success.png

Each argument is a run directory of ``python train.py task=gridworld ...`` (``results.json`` and Hydra's
``.hydra/config.yaml``, which names the agent and the seed).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import yaml

COLUMNS = [*range(5, 13), 13, 16, 20, 30, 50, 100]


def read_run(run_dir: Path) -> tuple[str, int, dict[int, float], float]:
    """``(agent, seed, {T: success}, wall_time_s)`` of one run directory."""
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    success = {
        int(name.split("/")[1][1:]): value
        for name, value in results.items()
        if name.startswith("test/T") and name.endswith("/success")
    }
    return cfg["unit"]["name"], int(cfg["seed"]), success, float(results.get("wall_time_s", float("nan")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("gridworld_success.png"))
    args = parser.parse_args(argv)

    args.runs = [r for r in args.runs if (r / "results.json").exists()]  # finished runs only
    runs = sorted(read_run(r) for r in args.runs)
    header = ["agent", "seed", *[f"T={k}" for k in COLUMNS], "min over T=1..100", "largest T ≥ 0.5", "wall s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    curves: dict[str, list[dict[int, float]]] = defaultdict(list)
    for agent, seed, success, wall in runs:
        curves[agent].append(success)
        cells = [f"{success[k]:.2f}" if k in success else "–" for k in COLUMNS]
        worst = min(v for k, v in success.items() if k <= 100)
        reach = max((k for k, v in success.items() if v >= 0.5), default=0)
        print(f"| {agent} | {seed} | " + " | ".join(cells) + f" | {worst:.2f} | {reach} | {wall:.0f} |")

    for run_dir in args.runs:  # the clock agents' learned time-left weights (should be T - t: [1, -1])
        ckpt = run_dir / "checkpoints" / "best.ckpt"
        if ckpt.exists() and read_run(run_dir)[0] == "nau":
            import torch

            weights = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
            print(f"{run_dir.name}: time left = {weights['model.time_left.W'].flatten().tolist()} . [T, t]")

    from nalu_suite.tasks.gridworld.figure import LABELS, plot_success

    means = {}
    for agent, runs_ in curves.items():
        label = f"{LABELS.get(agent, agent)}, mean of {len(runs_)} seeds"
        means[label] = {k: sum(r[k] for r in runs_) / len(runs_) for k in runs_[0]}
    plot_success(means, list(range(5, 13)), args.out)
    print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
