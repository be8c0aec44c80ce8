"""Milliseconds per MNIST training step for each recurrent core, with and without flushing denormals.

    python scripts/bench_mnist_step.py                          # nau, nac, lstm, gru; 60 steps each
    python scripts/bench_mnist_step.py --units nau,lstm --steps 100 --task mnist_count

Each core trains ``--steps`` steps of ``task=<task> unit=<unit>`` (its config's batch, model and
optimiser; the CNN trains from the first step, no warm-up) twice in this one process, with
``torch.set_flush_denormal`` off and on, so both settings see the same load. Denormal floats
(|x| < 1.2e-38) are 10-100 times slower than normal ones on x86 CPUs; once gradients or Adam's
second moments become that small, steps slow down. The median and the slowest step are printed as a
markdown table; the first ``--skip`` steps are left out of both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load_task(task: str, unit: str, data_dir: Path):
    from omegaconf import OmegaConf

    from nalu_suite.config import compose
    from nalu_suite.tasks import build_task

    cfg = compose([f"task={task}", f"unit={unit}"])
    task_cfg = OmegaConf.to_container(cfg.task) | {"data_dir": str(data_dir)}
    built = build_task(task_cfg, OmegaConf.to_container(cfg.unit), 0)
    built.require_digits()
    return built, cfg


def step_times(task, cfg, steps: int, flush: bool) -> tuple[list[float], float]:
    """Seconds of each training step (forward, backward, Adam) of a fresh seed-0 model; the last loss."""
    torch.set_flush_denormal(flush)
    torch.manual_seed(0)
    model = task.build_model().train()
    model.cnn_warmup_steps = 0
    optimizer = torch.optim.Adam(model.parameters(), float(cfg.optim.lr))
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        batch = task.sample_train(g, int(cfg.batch_size))
        started = time.perf_counter()
        pred, target = task.predict(model, batch)
        loss = torch.nn.functional.mse_loss(pred, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    torch.set_flush_denormal(False)
    return times, loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="mnist_add", choices=["mnist_add", "mnist_count"])
    parser.add_argument("--units", default="nau,nac,lstm,gru", help="comma-separated unit configs")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip", type=int, default=5, help="first steps left out (warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    if args.steps <= args.skip:
        parser.error(f"--steps={args.steps} must be larger than --skip={args.skip}")
    torch.set_num_threads(args.threads)
    print(f"{args.task}, {args.steps} steps per core and setting, {args.threads} thread(s)\n")
    print("| core | denormals | median ms/step | slowest ms/step | loss at the last step |")
    print("|---|---|---:|---:|---:|")
    for unit in args.units.split(","):
        task, cfg = load_task(args.task, unit, args.data_dir)
        for flush in (False, True):
            times, loss = step_times(task, cfg, args.steps, flush)
            label = "flushed to zero" if flush else "kept (torch default)"
            median, slowest = statistics.median(times[args.skip :]) * 1e3, max(times[args.skip :]) * 1e3
            print(f"| {unit} | {label} | {median:.0f} | {slowest:.0f} | {loss:.4g} |", flush=True)


if __name__ == "__main__":
    main()
