"""Resume helpers (nalu_suite.checkpointing) in-process; the runs themselves are in
tests/integration/test_resume.py and test_checkpoints.py."""

from __future__ import annotations

import csv

from nalu_suite.checkpointing import ResumableCSVLogger, config_differences


def read(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def write_history(log_dir, steps):
    log_dir.mkdir(parents=True)
    with open(log_dir / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["step", "train/loss"])
        writer.writeheader()
        writer.writerows({"step": s, "train/loss": s / 10} for s in steps)


def test_a_resumed_csv_log_keeps_the_rows_before_the_checkpoint_and_appends(tmp_path):
    write_history(tmp_path / "csv", range(8))  # the interrupted run logged up to step 7
    logger = ResumableCSVLogger(tmp_path, name="csv", version="")
    logger.resume_from(5)  # its checkpoint: global_step 5 (rows of steps 0..4 were logged before it)
    logger.log_metrics({"train/loss": 0.55, "val/mse": 1.0}, step=5)  # a new column too
    logger.save()
    rows = read(tmp_path / "csv" / "metrics.csv")
    assert [r["step"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    assert rows[1]["train/loss"] == "0.1" and rows[5]["val/mse"] == "1.0" and rows[0]["val/mse"] == ""


def test_a_fresh_run_in_the_same_directory_starts_a_new_csv_log(tmp_path):
    write_history(tmp_path / "csv", range(8))
    logger = ResumableCSVLogger(tmp_path, name="csv", version="")
    logger.log_metrics({"train/loss": 2.0}, step=0)
    logger.save()
    assert [r["step"] for r in read(tmp_path / "csv" / "metrics.csv")] == ["0"]


def test_config_differences_name_every_key_that_differs():
    saved = {"task": {"op": "div", "eval_size": 200}, "unit": {"name": "nalu"}, "seed": 0, "max_steps": 100}
    now = {
        "task": {"op": "mul", "eval_size": 200},
        "unit": {"name": "nalu", "extra": 1},
        "seed": 0,
        "max_steps": 900,
    }
    assert config_differences(saved, now) == [
        "task.op='div' in the checkpoint, 'mul' now",
        "unit.extra=unset in the checkpoint, 1 now",
    ]
