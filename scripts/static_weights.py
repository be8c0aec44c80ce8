"""What the first layer of a batched static-task run learned: which input slices each hidden unit sums.

    python scripts/static_weights.py logs/static_arith/multiruns/<date>_<time>/0   # one replicas run
    python scripts/static_weights.py <multirun dir>                                # every run under it

The static task's target is ``op(a, b)`` with ``a``, ``b`` the sums of two overlapping input slices.
An exact two-layer model has one hidden unit summing ``a``'s slice and the other ``b``'s: per hidden
unit, the mean weight over the inputs only in ``a`` (``a-only``), in both (``overlap``) and only in
``b`` (``b-only``) is (1, 1, 0) and (0, 1, 1), up to sign. Reads ``checkpoints/replicas.pt`` (the
best-validation weights of every replica and the resolved config, written by ``replicas=R`` runs; older
files without the config fall back to the run's ``.hydra/config.yaml``). The file is read with
``torch.load(weights_only=True)``: a file holding pickled code is refused with a one-line error, its code
never runs. Each replica is classified:

* ``exact-shape``: one unit ~a, the other ~b (every mean within 0.1 of the ideal, up to sign);
* ``symmetric``: both units ~(a + b) / 2 (a-only and b-only means of both units in [0.25, 0.75]): a
  saddle where the two units are interchangeable, whose interpolation error ``((a - b) / 2)^2`` is small;
* ``other``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch
import yaml

from nalu_suite.tasks.arithmetic import draw_subsets


def slice_means(weight: torch.Tensor, subsets) -> list[tuple[float, float, float, float]]:
    """Per hidden unit (row of ``weight``): mean weight over a-only, overlap, b-only and other inputs."""
    in_a, in_b = subsets.masks(weight.shape[-1], dtype=torch.bool)
    parts = [in_a & ~in_b, in_a & in_b, in_b & ~in_a, ~(in_a | in_b)]
    return [tuple(float(row[p].mean()) if p.any() else 0.0 for p in parts) for row in weight]


def classify(means: list[tuple[float, float, float, float]]) -> str:
    signed = [tuple(v * (1 if m[1] >= 0 else -1) for v in m[:3]) for m in means]
    ideal = [(1.0, 1.0, 0.0), (0.0, 1.0, 1.0)]
    for order in (ideal, ideal[::-1]):
        rows = zip(signed, order, strict=False)
        pairs = [(v, t) for row, goal in rows for v, t in zip(row, goal, strict=True)]
        if len(signed) == 2 and all(abs(v - t) < 0.1 for v, t in pairs):
            return "exact-shape"
    if len(signed) == 2 and all(0.25 <= row[i] <= 0.75 for row in signed for i in (0, 2)):
        return "symmetric"
    return "other"


class ReplicasFileError(Exception):
    """A ``replicas.pt`` (or its config) that cannot be read; the message names the file."""


def load_replicas(run_dir: Path) -> tuple[dict, dict]:
    """``(checkpoint, config)`` of a replicas run: plain values only (``weights_only=True``, so no
    pickled code runs), or :class:`ReplicasFileError` naming the file."""
    path = run_dir / "checkpoints" / "replicas.pt"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for unsafe or broken files
        raise ReplicasFileError(
            f"{path} is not a readable replicas checkpoint ({type(err).__name__}; loaded with "
            "weights_only=True, which refuses pickled code)"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("best"), dict) or "seeds" not in ckpt:
        raise ReplicasFileError(f"{path} is not a replicas checkpoint (no 'seeds' and 'best' weights in it)")
    if "model.first.W" not in ckpt["best"]:
        raise ReplicasFileError(f"{path} has no first-layer weights model.first.W (not a static_arith run?)")
    cfg = ckpt.get("config")
    if not isinstance(cfg, dict):  # written before replicas.pt stored its config
        config_file = run_dir / ".hydra" / "config.yaml"
        try:
            cfg = yaml.safe_load(config_file.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ReplicasFileError(
                f"{path} stores no config and {config_file} is unreadable ({type(err).__name__})"
            ) from None
    if not isinstance(cfg, dict) or not all(isinstance(cfg.get(k), dict) for k in ("task", "unit")):
        raise ReplicasFileError(f"the config of {run_dir} has no 'task' and 'unit' sections")
    return ckpt, cfg


def describe(run_dir: Path) -> Counter:
    ckpt, cfg = load_replicas(run_dir)
    task = cfg["task"]
    weights = ckpt["best"]["model.first.W"]  # (R, hidden, inputs)
    unit = cfg["unit"]["name"]
    if unit == "auto":  # the unit the task picked for its op
        unit = f"auto ({task['best_units'][task['op']]})"
    print(f"\n{run_dir}: task.op={task['op']} unit={unit}")
    print("| seed | class | unit: mean weight over a-only / overlap / b-only / other inputs |")
    print("|---:|---|---|")
    counts: Counter = Counter()
    for seed, weight in zip(ckpt["seeds"], weights, strict=True):
        subsets = draw_subsets(
            int(task["input_size"]), float(task["subset_ratio"]), float(task["overlap_ratio"]), seed
        )
        means = slice_means(weight, subsets)
        kind = classify(means)
        counts[kind] += 1
        shown = "; ".join(" / ".join(f"{v:+.2f}" for v in m) for m in means)
        print(f"| {seed} | {kind} | {shown} |")
    print("\n" + ", ".join(f"{kind}: {n}/{len(weights)}" for kind, n in sorted(counts.items())))
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("path", type=Path, help="a replicas run directory, or a directory holding several")
    args = parser.parse_args(argv)
    runs = sorted(p.parent.parent for p in args.path.rglob("checkpoints/replicas.pt"))
    if not runs:
        raise SystemExit(f"error: no checkpoints/replicas.pt under {args.path} (is it a replicas=R run?)")
    total: Counter = Counter()
    for run_dir in runs:
        try:
            total += describe(run_dir)
        except ReplicasFileError as err:
            raise SystemExit(f"error: {err}") from None
    if len(runs) > 1:
        print(f"\nall {len(runs)} runs: " + ", ".join(f"{k}: {n}" for k, n in sorted(total.items())))


if __name__ == "__main__":
    main()
