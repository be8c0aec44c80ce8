"""Seed-steps per second of ``replicas=R`` against R separate plain runs, on the static task.

    python scripts/bench_replicas.py threads=1                  # R = 1, 10, 100; writes BENCHMARKS.md
    python scripts/bench_replicas.py --replicas 1,10,100,300,1000 --compile false,true --rounds 3 \
        --replica-data process --long 3000 --figure docs/figures/replica_scaling.png threads=1
    python scripts/bench_replicas.py --val-every 1000 ...      # the default configuration's validations
    python scripts/bench_replicas.py --replicas 1,10 --long 1000 --short 200 --output /tmp/bench.md

Every measurement is a real ``python train.py task=static_arith ...`` process (NAU -> NMU on ``a * b``
by default, one validation at the end unless ``--val-every``, the task's default evaluation sets). Each
configuration runs twice, for ``--long`` and ``--short`` steps; the difference is the steady-state cost
of training steps (imports, setup, validation and test cancel out; compiling is measured by the run and
taken out, after an untimed run has filled inductor's cache). The end-to-end rate
(long run, everything included) is reported too, as are rates per CPU-second of the child process,
which are steadier than wall-clock rates on a shared machine, and each child's peak memory. "R separate
runs" run one after another, so their rate is the rate of one plain run whatever R is; two at a time on
two cores would at best double it (the last column divides by that best case). Each R runs once per
``--replica-data`` mode (who draws the next batches while the model trains: a forked process or a
thread, ``nalu_suite/replicas/data.py``) and ``--compile`` value (``replica_compile``). ``--rounds K``
repeats the whole set K times, interleaved (plain, then every replica configuration, then again), and
reports the medians: the ratio column is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the fresh-batch row of the parts table cycles through this many bytes of batches, several times the
#: CPU's cache, so that each step reads its batch from memory as the training loop does
FRESH_BYTES = 200 * 2**20
SECTION = "## Many seeds in one run (`replicas=R`), static task"


@dataclass
class Timing:
    wall: float
    cpu: float
    peak_mb: float  # the process's peak resident memory
    compile_s: float = 0.0  # the steps and evaluations that compiled (results.json), out of wall and cpu


def run_train(overrides: list[str], run_dir: Path) -> Timing:
    """One ``train.py`` process; its wall time, the CPU time it used (user + system) and its peak memory
    (``wait4``'s own-child usage: the forked data worker is a grandchild and not counted). The
    compilation of ``replica_compile=true`` (its ``compile_s``, which varies with inductor's cache) is
    taken out of both times: it is a start-up cost, reported apart."""
    command = [sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(os.environ, WANDB_MODE="disabled"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if child.returncode != 0:
            stderr.seek(0)
            error = stderr.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"error: {shlex.join(command)} failed:\n{error}")
    results = json.loads((run_dir / "results.json").read_text())
    compile_s = float(results.get("compile_s") or 0.0)
    cpu = usage.ru_utime + usage.ru_stime
    return Timing(wall - compile_s, cpu - compile_s, usage.ru_maxrss / 1024, compile_s)


@dataclass
class Rates:
    label: str
    replicas: int
    data: str  # replica_data mode ("" for the plain run)
    steady_wall: float  # seed-steps per second, from the long - short difference
    steady_cpu: float  # seed-steps per CPU-second, same difference
    end_to_end: float  # seed-steps per second of the long run, everything included
    long_wall: float
    peak_mb: float  # peak memory of the long run
    compile: str = "false"  # replica_compile
    compile_s: float = 0.0  # compiling, in the long run (excluded from every rate)
    ratios: list[float] = field(default_factory=list)  # steady_wall / the plain run's, one per round

    @property
    def engine(self) -> str:
        if not self.data:
            return "plain Lightning run"
        fused = ", compiled step" if self.compile == "true" else ""
        return f"replicas, data drawn by a {self.data}{fused}"


def measure(
    label: str, replicas: int, base: list[str], args, scratch: Path, data: str = "", compile: str = "false"
) -> Rates:
    if label == "plain":
        extra = []
    else:  # replicas=1 would run the plain path; force the replica engine for R = 1
        extra = [f"replicas={replicas}"] if replicas > 1 else ["+replicas_engine=true"]
        extra += [f"replica_data={data}", f"replica_compile={compile}"]
        label = f"{label}-{data}" + ("-compiled" if compile == "true" else "")

    def overrides(steps: int) -> list[str]:
        every = min(args.val_every, steps) if args.val_every else steps
        return [*base, *extra, f"trainer.max_steps={steps}", f"trainer.val_check_interval={every}"]

    if compile == "true":  # an untimed run first fills inductor's cache: a cold compile costs more than
        # its compile_s (inductor's worker processes, writing the cache) and would fall on one timed run
        run_train(overrides(args.short), scratch / f"{label}-{replicas}-warm-up")
    timings = {}
    for steps in (args.short, args.long):
        timings[steps] = run_train(overrides(steps), scratch / f"{label}-{replicas}-{steps}")
        print(
            f"  {label:26s} R={replicas:<4d} {steps:>6d} steps: {timings[steps].wall:7.1f} s wall, "
            f"{timings[steps].cpu:7.1f} s CPU, {timings[steps].peak_mb:6.0f} MB, "
            f"compiling {timings[steps].compile_s:5.1f} s",
            flush=True,
        )
    long, short = timings[args.long], timings[args.short]
    extra_steps = replicas * (args.long - args.short)
    return Rates(
        label=label,
        replicas=replicas,
        data=data,
        steady_wall=_rate(extra_steps, long.wall - short.wall),
        steady_cpu=_rate(extra_steps, long.cpu - short.cpu),
        end_to_end=replicas * args.long / long.wall,
        long_wall=long.wall,
        peak_mb=long.peak_mb,
        compile=compile,
        compile_s=long.compile_s,
    )


def _rate(seed_steps: int, seconds: float) -> float:
    """Seed-steps per second of a long - short difference; NaN where the long run took no longer (a
    measurement the machine's noise swamped, rather than an absurd rate)."""
    return seed_steps / seconds if seconds > 0 else math.nan


def _median(values: list[float]) -> float:
    """The median of the values that are not NaN (a swamped round, ``_rate``); NaN if none is left."""
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def median_rates(rounds: list[Rates]) -> Rates:
    """One configuration's rounds as one row: the median of each rate and of the per-round ratios."""
    first = rounds[0]

    def med(name: str) -> float:
        return _median([getattr(r, name) for r in rounds])

    ratios = [ratio for r in rounds for ratio in r.ratios]
    return Rates(
        first.label,
        first.replicas,
        first.data,
        med("steady_wall"),
        med("steady_cpu"),
        med("end_to_end"),
        med("long_wall"),
        max(r.peak_mb for r in rounds),
        first.compile,
        med("compile_s"),
        ratios,
    )


@dataclass
class Parts:
    """Milliseconds per training step of the R-replica run, its two halves timed apart in one process."""

    replicas: int
    data_ms: float  # drawing the step's batches of every replica (one block at a time, no overlap)
    model_ms: float  # forward, backward, optimiser and projection on a fixed batch, no regulariser
    model_reg_ms: float  # the same with the regulariser on
    data_torch_ms: float  # drawing as data_ms, with torch's uniform_ kernel instead of fast_uniform's
    compiled_ms: float = math.nan  # model_ms with replica_compile=true
    compiled_reg_ms: float = math.nan  # model_reg_ms with replica_compile=true
    compiled_fresh_ms: float = math.nan  # compiled_ms, a different batch each step (read from memory)


def steps_to_every_graph(run) -> int:
    """Steps from a run's start until a compiled run has built its step's graphs without the regulariser:
    one, or past whitened Adam's first whitened step (``optim.whiten_from``, counted by the optimiser),
    which compiles a graph of its own."""
    return int(run.optim_cfg.get("whiten_from") or 0) + 1


def time_parts(replicas: int, base: list[str], steps: int = 500, compiled: bool = False) -> Parts:
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

        # a fixed batch (5 MB at R = 100) stays in the cache from step to step; the loop's batches do not
        batch_bytes = sum(t.numel() * t.element_size() for t in batch)
        fresh = [tuple(t.clone() for t in batch) for _ in range(max(2, math.ceil(FRESH_BYTES / batch_bytes)))]
        warmed_up: set[int] = set()

        def model_ms(first_step: int, batches: list | None = None) -> float:
            batches = batches or [batch]
            # warm-up: 50 steps; a run's first also past whitened Adam's first whitened step (the
            # optimiser counts its own steps), which compiles a graph of its own when compiled
            warm_up = 50 if id(run) in warmed_up else max(50, steps_to_every_graph(run))
            warmed_up.add(id(run))
            run.step = first_step
            for _ in range(warm_up):
                run.train_step(batch)
            started = time.perf_counter()
            for i in range(steps):
                run.train_step(batches[i % len(batches)])
            return (time.perf_counter() - started) / steps * 1e3

        reg_on = max(int(run.reg["start"]), int(run.reg["end"])) if float(run.reg["weight"]) else None
        plain_ms = model_ms(0)
        reg_ms = model_ms(reg_on) if reg_on is not None else math.nan
        compiled_ms = compiled_reg_ms = compiled_fresh_ms = math.nan
        if compiled:  # the same steps compiled (compilation excluded by model_ms's warm-up)
            overrides = [f"replicas={replicas}", "replica_data=none", "replica_compile=true"]
            cfg = compose([*base, *overrides, f"hydra.run.dir={tmp}"])
            run = ReplicaRun(cfg, replica_settings(cfg))
            compiled_ms = model_ms(0)
            compiled_fresh_ms = model_ms(0, fresh)
            compiled_reg_ms = model_ms(reg_on) if reg_on is not None else math.nan
    return Parts(
        replicas,
        drawn_ms,
        plain_ms,
        reg_ms,
        drawn_by_torch_ms,
        compiled_ms,
        compiled_reg_ms,
        compiled_fresh_ms,
    )


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
        f"{' '.join(args.extra)}`, batch 128, "
        + (f"validation every {args.val_every} steps" if args.val_every else "one validation at the end")
        + ", the task's default evaluation sets (10,000 samples per split).",
        f"- Steady = seed-steps between a {args.short}-step and a {args.long}-step run of the same "
        "configuration, divided by the extra wall (or CPU) time: training steps only. End-to-end = "
        f"R x {args.long} / wall time of the {args.long}-step run, including start-up, validation and test. "
        "Compiling (`replica_compile=true`: the steps and evaluations that compiled, from `results.json`) is "
        "left out of every rate and shown apart; an untimed run of each compiled configuration fills "
        "inductor's cache first.",
        "- R separate runs: one plain `train.py` run (Lightning) per seed, one after another, so their rate "
        "does not depend on R. Two such runs at a time on two cores would at best double their rate; "
        "the last column compares against that best case.",
        f"- Rounds: {args.rounds}, interleaved; every figure is the median over the rounds, the speed-up the "
        "median of the per-round ratios (each round's replica rate over that round's plain rate), with "
        "the rounds' ratios in brackets. Peak memory: the training process (not its data worker).",
        "",
        "| R | engine | steady seed-steps/s | seed-steps per CPU-s | end-to-end seed-steps/s "
        "| wall of the long run | compiling | peak memory | speed-up vs R separate runs (steady) "
        "| vs 2 parallel runs | per CPU-s vs plain |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [plain, *rates]:
        speedup = _median(r.ratios) if r.ratios else r.steady_wall / plain.steady_wall
        spread = " [" + ", ".join(f"{x:.0f}" for x in r.ratios) + "]" if len(r.ratios) > 1 else ""
        lines.append(
            f"| {r.replicas} | {r.engine} | {r.steady_wall:,.0f} | {r.steady_cpu:,.0f} | "
            f"{r.end_to_end:,.0f} | {r.long_wall:.1f} s | {r.compile_s:.1f} s | {r.peak_mb:,.0f} MB "
            f"| {speedup:.1f}x{spread} "
            f"| {speedup / 2:.1f}x | {r.steady_cpu / plain.steady_cpu:.1f}x |"
        )
    if args.figure:
        lines += ["", f"![seed-steps per second against R]({args.figure_link})"]
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
            ("model step compiled (`replica_compile=true`)", parts.compiled_ms),
            ("the same with the regulariser on", parts.compiled_reg_ms),
            (
                f"model step compiled, a different batch each step (cycling {FRESH_BYTES >> 20} MB of "
                "batches: read from memory, as in the training loop)",
                parts.compiled_fresh_ms,
            ),
            ("the larger of data and model (no regulariser, eager)", bound),
        ]:
            if math.isnan(ms):
                continue
            rate = parts.replicas * 1e3 / ms if ms == ms else math.nan
            lines.append(f"| {name} | {ms:.2f} | {rate:,.0f} | {rate / plain.steady_wall:.1f}x |")
    return "\n".join(lines) + "\n"


def draw_scaling(rates: list[Rates], plain: Rates, path: Path) -> None:
    """Seed-steps/s (steady) and peak memory against R, one line per engine, the plain run's rate times
    R (R separate runs in parallel, unlimited cores) and 1x for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nalu_suite.figures import save_figure

    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 4))
    for engine in dict.fromkeys(r.engine for r in rates):
        rows = sorted((r for r in rates if r.engine == engine), key=lambda r: r.replicas)
        xs = [r.replicas for r in rows]
        speed.plot(xs, [r.steady_wall for r in rows], "o-", label=engine)
        memory.plot(xs, [r.peak_mb for r in rows], "o-", label=engine)
    speed.axhline(plain.steady_wall, color="grey", ls="--", label="one plain run (1x)")
    speed.axhline(100 * plain.steady_wall, color="grey", ls=":", label="100x one plain run")
    speed.set(xscale="log", yscale="log", xlabel="replicas R", ylabel="seed-steps / s (steady)")
    memory.set(xscale="log", yscale="log", xlabel="replicas R", ylabel="peak memory (MB)")
    speed.legend(fontsize=7)
    speed.grid(alpha=0.3, which="both")
    memory.grid(alpha=0.3, which="both")
    save_figure(fig, path)


def replace_section(document: str, section: str, title: str = SECTION) -> str:
    """``document`` with its ``title`` section (up to the next ``## `` heading) replaced by ``section``."""
    if title not in document:
        return (document.rstrip() + "\n\n" if document.strip() else "# Benchmarks\n\n") + section
    before, rest = document.split(title, 1)
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
        "--compile",
        default="false",
        help="comma-separated replica_compile values to run each R with (default false; e.g. false,true)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions (default 1)")
    parser.add_argument(
        "--val-every",
        type=int,
        default=0,
        help="validate every N steps in every run (default 0: once, at the end)",
    )
    parser.add_argument("--figure", type=Path, help="also draw seed-steps/s and memory against R here")
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
    compiles = [c.strip() for c in args.compile.split(",") if c.strip()]
    if not compiles or any(c not in ("false", "true") for c in compiles):
        parser.error(f"--compile {args.compile!r}: valid values are false, true")
    if args.rounds < 1 or args.val_every < 0:
        parser.error("--rounds must be >= 1 and --val-every >= 0")
    if args.figure:
        args.figure_link = os.path.relpath(args.figure.resolve(), args.output.resolve().parent)

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
    configs = [(r, mode, c) for r in replica_counts for mode in modes for c in compiles]
    plains: list[Rates] = []
    rounds: dict[tuple, list[Rates]] = {key: [] for key in configs}
    with tempfile.TemporaryDirectory(prefix="bench_replicas_") as tmp:
        scratch = Path(tmp)
        for k in range(args.rounds):
            print(f"round {k + 1} of {args.rounds}; plain Lightning run (one seed per process):", flush=True)
            plains.append(measure("plain", 1, base, args, scratch))
            plains[-1].ratios = [1.0]
            for replicas, mode, c in configs:
                rates = measure("replicas", replicas, base, args, scratch, mode, c)
                rates.ratios = [rates.steady_wall / plains[-1].steady_wall]
                rounds[(replicas, mode, c)].append(rates)
    plain = median_rates(plains)
    rates = [median_rates(rounds[key]) for key in configs]
    parts = None
    if not args.no_parts:
        print(f"the data and model halves of an R={max(replica_counts)} step:", flush=True)
        parts = time_parts(max(replica_counts), base, compiled="true" in compiles)
        print(
            f"  data {parts.data_ms:.2f} ms, model {parts.model_ms:.2f} ms, "
            f"with regulariser {parts.model_reg_ms:.2f} ms per step; compiled {parts.compiled_ms:.2f} ms",
            flush=True,
        )
    if args.figure:
        draw_scaling(rates, plain, args.figure)
    text = markdown(rates, plain, parts, args, started, load_before, load())
    old = args.output.read_text() if args.output.exists() else ""
    args.output.write_text(replace_section(old, text))
    print(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
