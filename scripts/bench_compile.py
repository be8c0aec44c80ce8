"""Milliseconds per replica step, eager against ``replica_compile=true``, for every unit of the static table.

    python scripts/bench_compile.py                          # 10 units, R = 100, 3 rounds; BENCHMARKS.md
    python scripts/bench_compile.py --units nmu,nau --replicas 10 --rounds 1 --output /tmp/compile.md

For each unit one ``ReplicaRun`` per mode trains on one fixed batch (the data halves are timed by
``bench_replicas.py``): the median of ``--steps`` steps without the regulariser, and again with it, the
two modes interleaved ``--rounds`` times in this process (one torch thread); then validations of each
(the median of three). The first compiled steps (compilation, cached by inductor on disk, so a second
process is faster) are timed apart. Also the largest difference of any weight after the same steps:
compiled code rounds differently, so the modes part by float32 rounding (docs/replicas.md).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_replicas import load, machine, replace_section, steps_to_every_graph  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## The replica step compiled (`replica_compile`), unit by unit"
UNITS = "nalu,nac,nac_mul,nau,nmu,inalu,npu,realnpu,linear,relu6"


def time_unit(unit: str, args, scratch: str) -> dict[str, float]:
    from nalu_suite.config import compose
    from nalu_suite.replicas import ReplicaRun, replica_settings

    runs, batch = {}, None
    for mode in ("false", "true"):
        overrides = [
            "task=static_arith",
            f"task.op={args.op}",
            f"unit={unit}",
            f"replicas={args.replicas}",
            "replica_data=none",
            "logger=none",
            f"replica_compile={mode}",
            f"hydra.run.dir={scratch}",
        ]
        cfg = compose(overrides)
        runs[mode] = run = ReplicaRun(cfg, replica_settings(cfg))
        if batch is None:
            buffer = run.batches._new_buffer()
            run.batches.draw_block(0, buffer, [])
            batch = tuple(t[:, 0].clone() for t in buffer)
    reg_on = int(max(runs["false"].reg["start"], runs["false"].reg["end"]))
    compile_s = 0.0
    # the first step of each graph compiles it (the eager run steps alike): without and with the
    # regulariser, and whitened Adam's first whitened step (the optimiser counts its own steps)
    for first, steps in ((0, steps_to_every_graph(runs["false"])), (reg_on, 1)):
        for mode, run in runs.items():
            run.step = first
            started = time.perf_counter()
            for _ in range(steps):
                run.train_step(batch)
            compile_s += time.perf_counter() - started if mode == "true" else 0.0
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for mode, run in runs.items():
            for phase, first in (("plain", 0), ("reg", reg_on)):
                run.step = first
                for _ in range(args.steps):
                    started = time.perf_counter()
                    run.train_step(batch)
                    times.setdefault((mode, phase), []).append(time.perf_counter() - started)
    row = {f"{mode}_{phase}": statistics.median(v) * 1e3 for (mode, phase), v in times.items()}
    for mode, run in runs.items():
        started = time.perf_counter()
        run.evaluate("val")  # the first fills caches (each seed's random baselines of the normalised error)
        row[f"{mode}_first_eval"] = time.perf_counter() - started
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            run.evaluate("val")
            seconds.append(time.perf_counter() - started)
        row[f"{mode}_eval"] = statistics.median(seconds)
    eager, fused = runs["false"].model.params, runs["true"].model.params
    row["difference"] = max(float((eager[k] - fused[k]).detach().abs().max()) for k in eager)
    row["compile_s"] = compile_s
    return row


def markdown(rows: dict[str, dict[str, float]], args, started: str, before: str, after: str) -> str:
    command = "python scripts/bench_compile.py " + " ".join(sys.argv[1:])
    lines = [
        SECTION,
        "",
        f"Measured {started} with `{command.strip()}`.",
        "",
        f"- Machine: {machine()}; one torch thread. Load average before: {before}; after: {after}.",
        f"- Workload: `task=static_arith task.op={args.op} unit=UNIT replicas={args.replicas}`, one fixed "
        f"batch of 128 per replica; median ms of {args.steps} steps x {args.rounds} interleaved rounds "
        "per mode, without and with the regulariser. Validation: the median of three `val` passes "
        "(10,000 samples per split, both splits) after a first one (which computes each seed's random "
        "baselines), in each mode (compiled since 2026-12-07); that first one timed apart in eager mode "
        "(a validation and the baselines: 10 freshly initialised models per evaluation set and seed).",
        "",
        "| unit | eager ms/step | compiled | speed-up | eager, regulariser on | compiled | speed-up "
        "| compiling (s) | a validation, eager (s) | compiled (s) | the first, eager (s) "
        "| largest weight difference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for unit, r in rows.items():
        lines.append(
            f"| `{unit}` | {r['false_plain']:.2f} | {r['true_plain']:.2f} "
            f"| {r['false_plain'] / r['true_plain']:.2f}x | {r['false_reg']:.2f} | {r['true_reg']:.2f} "
            f"| {r['false_reg'] / r['true_reg']:.2f}x | {r['compile_s']:.0f} | {r['false_eval']:.2f} "
            f"| {r['true_eval']:.2f} | {r['false_first_eval']:.1f} "
            f"| {r['difference']:.1e} |"
        )
    total = {key: sum(r[key] for r in rows.values()) for key in ("false_plain", "true_plain")}
    best = sum(min(r["false_plain"], r["true_plain"]) for r in rows.values())
    lines += [
        "",
        f"All units together (what one op of the static table steps per batch): eager "
        f"{total['false_plain']:.1f} ms, compiled {total['true_plain']:.1f} ms, the faster mode per unit "
        f"{best:.1f} ms.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", default=UNITS, help=f"comma-separated (default {UNITS})")
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per mode, phase and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--op", default="mul")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    if args.replicas < 1 or args.steps < 1 or args.rounds < 1:
        parser.error("--replicas, --steps and --rounds must be >= 1")
    import torch

    torch.set_num_threads(1)
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    before = load()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench_compile_") as scratch:
        for unit in [u for u in args.units.split(",") if u]:
            rows[unit] = r = time_unit(unit, args, scratch)
            print(
                f"{unit:8s} eager {r['false_plain']:6.2f} ms, compiled {r['true_plain']:6.2f} ms "
                f"(regulariser: {r['false_reg']:6.2f} / {r['true_reg']:6.2f}), "
                f"compiling {r['compile_s']:.0f} s",
                flush=True,
            )
    text = markdown(rows, args, started, before, load())
    old = args.output.read_text() if args.output.exists() else ""
    args.output.write_text(replace_section(old, text, SECTION))
    print(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
