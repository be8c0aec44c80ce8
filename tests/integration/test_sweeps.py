"""Hydra sweeps through ``train.py``'s entry point: grid multirun + report, Optuna on joblib, submitit.

The sweeps run Hydra in this process (``nalu_suite.train.main`` with a patched ``sys.argv``, exactly
what ``python train.py ...`` does), so the basic launcher and the Optuna sweeper cost no extra
torch import. The joblib and submitit launchers start their own worker processes, as they do outside
tests. Every job is a 20-step static-task run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "task=static_arith",
    "task.op=add",
    "trainer.max_steps=20",
    "trainer.val_check_interval=10",
    "task.eval_size=200",
    "task.baseline_draws=2",
    "callbacks.progress_bar=null",
]


def run_hydra(argv: list[str]) -> None:
    """Run ``python train.py ARGV`` in this process; restore the logging Hydra reconfigures."""
    from hydra.core.global_hydra import GlobalHydra

    from nalu_suite.cli.train import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved_argv, saved_env = sys.argv, dict(os.environ)
    sys.argv = ["train.py", *argv]
    os.environ.update(WANDB_MODE="disabled", HYDRA_FULL_ERROR="1")
    try:
        main()
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        root.handlers[:], root.level = handlers, level
        GlobalHydra.instance().clear()


def jobs(sweep_dir: Path) -> list[dict]:
    """Every job of a finished sweep: its overrides, composed config, results and start/end times."""
    out = []
    for job_dir in sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        config_path = job_dir / ".hydra" / "config.yaml"
        results_path = job_dir / "results.json"
        overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
        out.append(
            {
                "dir": job_dir,
                "overrides": dict(o.split("=", 1) for o in overrides),
                "config": yaml.safe_load(config_path.read_text()),
                "results": json.loads(results_path.read_text()),
                "started": config_path.stat().st_mtime,
                "finished": results_path.stat().st_mtime,
            }
        )
    return out


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory) -> Path:
    """``python train.py -m ... unit=nalu,nau seed=0,1`` on the basic launcher: 4 jobs."""
    sweep_dir = tmp_path_factory.mktemp("grid")
    run_hydra(["-m", *TINY, "unit=nalu,nau", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"])
    return sweep_dir


def test_grid_multirun_runs_every_combination_with_its_own_config(grid_sweep):
    done = jobs(grid_sweep)
    assert sorted((j["overrides"]["unit"], j["overrides"]["seed"]) for j in done) == [
        ("nalu", "0"),
        ("nalu", "1"),
        ("nau", "0"),
        ("nau", "1"),
    ]
    for job in done:
        assert job["config"]["unit"]["name"] == job["overrides"]["unit"]
        assert job["config"]["seed"] == int(job["overrides"]["seed"])
        assert job["results"]["train_steps"] == 20
        assert math.isfinite(job["results"]["val/mse"])
    by_seed = {
        j["overrides"]["seed"]: j["results"]["val/mse"] for j in done if j["overrides"]["unit"] == "nau"
    }
    assert by_seed["0"] != by_seed["1"]  # the seed reaches the run


def test_report_pools_the_seeds_of_a_multirun(grid_sweep):
    from nalu_suite.report import fmt
    from nalu_suite.stats import mean_std

    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report.py"), str(grid_sweep), "--metrics", "val/mse"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.strip().splitlines()[2:]]
    assert len(rows) == 2  # one row per unit, the two seeds pooled
    for unit in ("nalu", "nau"):
        (row,) = [r for r in rows if f"unit={unit}" in r[0]]
        assert "seed" not in row[0]
        values = [j["results"]["val/mse"] for j in jobs(grid_sweep) if j["overrides"]["unit"] == unit]
        mean, std = mean_std(values)
        assert row[1] == "2"
        assert row[2] == f"{fmt(mean)} ± {fmt(std)}"


def test_optuna_sweep_tunes_lr_and_nalu_options_with_parallel_trials(tmp_path):
    """`hparams_search=nalu_optuna` sweeps without -m; with the joblib launcher a batch of trials runs in
    parallel; the best trial reported is the job with the lowest returned metric (val/mse)."""
    import torch

    run_hydra(
        [
            "hparams_search=nalu_optuna",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=2",
            *TINY,
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    done = jobs(tmp_path)
    assert len(done) == 2
    # joblib: each trial started before the other one finished
    assert max(j["started"] for j in done) < min(j["finished"] for j in done)
    for job in done:
        unit = job["config"]["unit"]
        assert unit["first"] == unit["second"] == "nalu"
        assert 1e-4 <= job["config"]["optim"]["lr"] <= 1e-1
        assert unit["first_options"]["gate"] in ("input", "scalar")
        assert unit["first_options"]["shared_weights"] in (True, False)
        # the output layer follows the first layer's sampled options (as trained: the checkpoint's hparams)
        trained = torch.load(job["dir"] / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
        assert (
            trained["unit"]["second_options"]
            == trained["unit"]["first_options"]
            == {
                "gate": unit["first_options"]["gate"],
                "shared_weights": unit["first_options"]["shared_weights"],
            }
        )
    assert done[0]["config"]["optim"]["lr"] != done[1]["config"]["optim"]["lr"]

    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    winner = min(done, key=lambda j: j["results"]["val/mse"])
    assert best["best_value"] == pytest.approx(winner["results"]["val/mse"])
    assert best["best_params"]["optim.lr"] == pytest.approx(winner["config"]["optim"]["lr"])
    assert best["best_params"]["unit.first_options.gate"] == winner["config"]["unit"]["first_options"]["gate"]


def test_submitit_local_launcher_runs_the_job_and_returns_its_objective(tmp_path):
    """The SLURM code path (submitit pickles the job, a worker process runs it) on this machine."""
    run_hydra(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "hydra.launcher.cpus_per_task=1",
            *TINY,
            "unit=nau",
            "seed=3",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    (job,) = jobs(tmp_path)
    assert job["config"]["seed"] == 3
    (result_pickle,) = (tmp_path / ".submitit").glob("*/*_result.pkl")
    status, job_return = pickle.loads(result_pickle.read_bytes())
    assert status == "success"
    assert job_return.return_value == pytest.approx(job["results"]["val/mse"])  # the sweep objective
    assert (result_pickle.parent / result_pickle.name.replace("_result.pkl", "_log.out")).exists()


def compose_with_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nalu_suite.resources import conf_dir

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(config_name="train", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def test_slurm_launcher_takes_partition_gpus_and_time_as_overrides():
    cfg = compose_with_hydra(
        [
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu-short",
            "hydra.launcher.gpus_per_node=1",
            "hydra.launcher.timeout_min=30",
            "trainer=gpu",
        ]
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu-short", 1, 30)
    assert launcher.tasks_per_node == 1 and cfg.trainer.devices == 1  # one GPU, one process per job


def test_local_example_config_sends_sweeps_to_slurm():
    """conf/local/example.yaml (copy it to conf/local/default.yaml on a cluster) composes."""
    cfg = compose_with_hydra(["local=example", "hydra.launcher.partition=long"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "long"
    assert cfg.hydra.launcher.gpus_per_node == 1
