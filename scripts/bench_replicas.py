"""Seed-steps per second of ``replicas=R`` against R separate plain runs, on the static task.

    python scripts/bench_replicas.py                       # R = 1, 10, 100; writes BENCHMARKS.md
    python scripts/bench_replicas.py --replicas 1,10 --long 1000 --short 200 --output /tmp/bench.md
    python scripts/bench_replicas.py --replica-data process    # only the default way of drawing data

Every measurement is a real ``python train.py task=static_arith ...`` process (NAU -> NMU on ``a * b``
by default, one validation at the end, the task's default evaluation sets). Each configuration runs
twice, for ``--long`` and ``--short`` steps; the difference is the steady-state cost of training
steps (imports, setup, validation and test cancel out). The end-to-end rate (long run, everything
included) is reported too, as are rates per CPU-second of the child process, which are steadier than
wall-clock rates on a shared machine. "R separate runs" run one after another, so their rate is the
rate of one plain run whatever R is; two at a time on two cores would at best double it (the last
column divides by that best case). Each R runs once per ``--replica-data`` mode (who draws the next
batches while the model trains: a forked process or a thread, ``nalu_suite/replicas/data.py``), side by side.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Many seeds in one run (`replicas=R`), static task"


@dataclass
class Timing:
    wall: float
    cpu: float


def run_train(overrides: list[str], run_dir: Path) -> Timing:
    """One ``train.py`` process; its wall time and the CPU time it used (user + system)."""
    command = [sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ, WANDB_MODE="disabled"), capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"error: {shlex.join(command)} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


@dataclass
class Rates:
    label: str
    replicas: int
    data: str  # replica_data mode ("" for the plain run)
    steady_wall: float  # seed-steps per second, from the long - short difference
    steady_cpu: float  # seed-steps per CPU-second, same difference
    end_to_end: float  # seed-steps per second of the long run, everything included
    long_wall: float


def measure(label: str, replicas: int, base: list[str], args, scratch: Path, data: str = "") -> Rates:
    if label == "plain":
        extra = []
    else:  # replicas=1 would run the plain path; force the replica engine for R = 1
        extra = [f"replicas={replicas}"] if replicas > 1 else ["+replicas_engine=true"]
        extra.append(f"replica_data={data}")
        label = f"{label}-{data}"
    timings = {}
    for steps in (args.short, args.long):
        overrides = [*base, *extra, f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}"]
        timings[steps] = run_train(overrides, scratch / f"{label}-{replicas}-{steps}")
        print(
            f"  {label:17s} R={replicas:<4d} {steps:>6d} steps: {timings[steps].wall:7.1f} s wall, "
            f"{timings[steps].cpu:7.1f} s CPU",
            flush=True,
        )
    long, short = timings[args.long], timings[args.short]
    extra_steps = replicas * (args.long - args.short)
    return Rates(
        label=label,
        replicas=replicas,
        data=data,
        steady_wall=extra_steps / max(long.wall - short.wall, 1e-9),
        steady_cpu=extra_steps / max(long.cpu - short.cpu, 1e-9),
        end_to_end=replicas * args.long / long.wall,
        long_wall=long.wall,
    )


@dataclass
class Parts:
    """Milliseconds per training step of the R-replica run, its two halves timed apart in one process."""

    replicas: int
    data_ms: float  # drawing the step's batches of every replica (one block at a time, no overlap)
    model_ms: float  # forward, backward, optimiser and projection on a fixed batch, no regulariser
    model_reg_ms: float  # the same with the regulariser on
    data_torch_ms: float  # drawing as data_ms, with torch's uniform_ kernel instead of fast_uniform's


def time_parts(replicas: int, base: list[str], steps: int = 500) -> Parts:
    """Time the data and the model halves of a ``replicas``-replica step separately (one thread)."""
    import torch

    from nalu_suite import fast_uniform
    from nalu_suite.config import compose
    from nalu_suite.replicas import ReplicaRun, replica_settings

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_parts_") as tmp:
        cfg = compose([*base, f"replicas={replicas}", "replica_data=none", f"hydra.run.dir={tmp}"])
        run = ReplicaRun(cfg, replica_settings(cfg))
        stacked = run.batches
        buffer = stacked._new_buffer()
        blocks = max(2, steps // (10 * stacked.block))

        def data_ms() -> float:
            generators: list = []
            stacked.draw_block(0, buffer, generators)
            started = time.perf_counter()
            for j in range(1, blocks + 1):
                stacked.draw_block(j, buffer, generators)
            return (time.perf_counter() - started) / (blocks * stacked.block) * 1e3

        drawn_ms = data_ms()
        with fast_uniform.torch_kernel():
            drawn_by_torch_ms = data_ms()
        batch = tuple(t[:, 0].clone() for t in buffer)

        def model_ms(first_step: int) -> float:
            run.step = first_step
            for _ in range(50):  # warm-up
                run.train_step(batch)
            started = time.perf_counter()
            for _ in range(steps):
                run.train_step(batch)
            return (time.perf_counter() - started) / steps * 1e3

        reg_on = max(int(run.reg["start"]), int(run.reg["end"])) if float(run.reg["weight"]) else None
        plain_ms = model_ms(0)
        reg_ms = model_ms(reg_on) if reg_on is not None else math.nan
    return Parts(replicas, drawn_ms, plain_ms, reg_ms, drawn_by_torch_ms)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores visible, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {platform.system()} {platform.release()}"
    )


def uniform_backend() -> str:
    from nalu_suite import fast_uniform

    return fast_uniform.backend()


def load() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def markdown(
    rates: list[Rates],
    plain: Rates,
    parts: Parts | None,
    args,
    started: str,
    load_before: str,
    load_after: str,
) -> str:
    command = "python scripts/bench_replicas.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        SECTION,
        "",
        f"Measured {started} with `{command.strip()}`.",
        "",
        f"- Machine: {machine()}.",
        f"- Uniform draws (`nalu_suite.fast_uniform`): {uniform_backend()}.",
        f"- Load average (1/5/15 min) before: {load_before}; after: {load_after}. The machine is shared, so",
        "  wall-clock rates vary from run to run; the per-CPU-second rates are steadier.",
        f"- Workload: `python train.py task=static_arith task.op={args.op} unit={args.unit} "
        f"{' '.join(args.extra)}`, batch 128, one validation at the end, the task's default evaluation "
        "sets (10,000 samples per split).",
        f"- Steady = seed-steps between a {args.short}-step and a {args.long}-step run of the same "
        "configuration, divided by the extra wall (or CPU) time: training steps only. End-to-end = "
        f"R x {args.long} / wall time of the {args.long}-step run, including start-up, validation and test.",
        "- R separate runs: one plain `train.py` run (Lightning) per seed, one after another, so their rate "
        "does not depend on R. Two such runs at a time on two cores would at best double their rate; "
        "the last column compares against that best case.",
        "",
        "| R | engine | steady seed-steps/s | seed-steps per CPU-s | end-to-end seed-steps/s "
        "| wall of the long run | speed-up vs R separate runs (steady) | vs 2 parallel runs "
        "| per CPU-s vs plain |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [plain, *rates]:
        engine = "plain Lightning run" if r is plain else f"replicas, data drawn by a {r.data}"
        speedup = r.steady_wall / plain.steady_wall
        lines.append(
            f"| {r.replicas} | {engine} | {r.steady_wall:,.0f} | {r.steady_cpu:,.0f} | {r.end_to_end:,.0f} "
            f"| {r.long_wall:.1f} s | {speedup:.1f}x | {speedup / 2:.1f}x "
            f"| {r.steady_cpu / plain.steady_cpu:.1f}x |"
        )
    if parts is not None:
        bound = max(parts.data_ms, parts.model_ms)
        lines += [
            "",
            f"The two halves of an R = {parts.replicas} step, timed apart in the benchmark's own process "
            "(one thread each, no overlap; `time_parts` in the script). Their maximum bounds the steady "
            "rate when drawing and training overlap perfectly on two cores:",
            "",
            "| part | ms per step | seed-steps/s if it were the only cost | vs the plain run |",
            "|---|---:|---:|---:|",
        ]
        for name, ms in [
            (
                "drawing the batches of every replica (uniforms by `fast_uniform`'s compiled kernel)",
                parts.data_ms,
            ),
            (
                "the same with torch's `uniform_` kernel (the same values; before 2026-12-06)",
                parts.data_torch_ms,
            ),
            ("model step on a fixed batch (forward, backward, optimiser, projection)", parts.model_ms),
            ("the same with the regulariser on", parts.model_reg_ms),
            ("the larger of data and model (no regulariser)", bound),
        ]:
            rate = parts.replicas * 1e3 / ms if ms == ms else math.nan
            lines.append(f"| {name} | {ms:.2f} | {rate:,.0f} | {rate / plain.steady_wall:.1f}x |")
    return "\n".join(lines) + "\n"


def replace_section(document: str, section: str) -> str:
    """``document`` with its ``SECTION`` (up to the next ``## `` heading) replaced by ``section``."""
    if SECTION not in document:
        return (document.rstrip() + "\n\n" if document.strip() else "# Benchmarks\n\n") + section
    before, rest = document.split(SECTION, 1)
    after = rest[rest.index("\n## ") + 1 :] if "\n## " in rest else ""
    return before + section + ("\n" + after if after else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", default="1,10,100", help="comma-separated R values (default 1,10,100)")
    parser.add_argument(
        "--long",
        type=int,
        default=11000,
        help="steps of the long runs (default 11000: at R = 100 the "
        "start-up and evaluation vary by ~10 s between runs, so the difference must be long)",
    )
    parser.add_argument("--short", type=int, default=1000, help="steps of the short runs (default 1000)")
    parser.add_argument(
        "--replica-data",
        default="process,thread",
        help="comma-separated replica_data modes to run each R with (default process,thread)",
    )
    parser.add_argument(
        "--no-parts", action="store_true", help="skip timing the data and model halves of the largest R"
    )
    parser.add_argument("--op", default="mul")
    parser.add_argument("--unit", default="nmu")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("extra", nargs="*", help="more train.py overrides, e.g. threads=2")
    args = parser.parse_args()
    if args.long <= args.short:
        parser.error("--long must be larger than --short")
    replica_counts = [int(r) for r in args.replicas.split(",") if r.strip()]
    if any(r < 1 for r in replica_counts):
        parser.error("--replicas values must be >= 1")
    from nalu_suite.replicas.data import PREFETCH_MODES

    modes = [m.strip() for m in args.replica_data.split(",") if m.strip()]
    if not modes or any(m not in PREFETCH_MODES for m in modes):
        parser.error(f"--replica-data {args.replica_data!r}: valid modes are {', '.join(PREFETCH_MODES)}")

    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_before = load()
    base = [
        "task=static_arith",
        f"task.op={args.op}",
        f"unit={args.unit}",
        "logger=none",
        "callbacks.progress_bar=null",
        *args.extra,
    ]
    with tempfile.TemporaryDirectory(prefix="bench_replicas_") as tmp:
        scratch = Path(tmp)
        print("plain Lightning run (one seed per process):", flush=True)
        plain = measure("plain", 1, base, args, scratch)
        rates = []
        for replicas in replica_counts:
            print(f"replicas={replicas}:", flush=True)
            for mode in modes:
                rates.append(measure("replicas", replicas, base, args, scratch, mode))
    parts = None
    if not args.no_parts:
        print(f"the data and model halves of an R={max(replica_counts)} step:", flush=True)
        parts = time_parts(max(replica_counts), base)
        print(
            f"  data {parts.data_ms:.2f} ms, model {parts.model_ms:.2f} ms, "
            f"with regulariser {parts.model_reg_ms:.2f} ms per step",
            flush=True,
        )
    text = markdown(rates, plain, parts, args, started, load_before, load())
    old = args.output.read_text() if args.output.exists() else ""
    args.output.write_text(replace_section(old, text))
    print(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
