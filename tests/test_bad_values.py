"""Checks of bad values below the command line (``tests/integration/test_bad_inputs.py`` runs the commands):
the optimiser config, the run-wide values, Hydra's messages made one line, the predict tool's echo of
a phrase, the mode of decompressed MNIST files."""

from __future__ import annotations

import gzip
import os
import stat
import struct

import pytest

from nalu_suite.errors import ConfigError, clip_text
from nalu_suite.optim import check_optim
from nalu_suite.runtime import validate


@pytest.mark.parametrize(
    "optim, message",
    [
        ({"lr": -1}, "optim.lr=-1 must be > 0"),
        ({"lr": 0}, "optim.lr=0 must be > 0"),
        ({"lr": "abc"}, "optim.lr='abc' must be a finite number > 0"),
        ({"lr": float("inf")}, "optim.lr=inf must be a finite number > 0"),
        ({"lr": True}, "optim.lr=True must be a finite number > 0"),
        ({"lr": 1e-3, "final_lr_factor": 2}, "optim.final_lr_factor=2 must be in [0, 1]"),
        ({"lr": 1e-3, "weight_decay": -1}, "optim.weight_decay=-1: torch.optim.Adam refuses them"),
        ({"name": "sgd", "lr": 1e-3, "betas": [0.9, 0.99]}, "torch.optim.SGD refuses them"),
    ],
)
def test_check_optim_refuses_bad_values_in_one_line(optim, message):
    with pytest.raises(ConfigError) as err:
        check_optim({"name": "adam", "schedule": "none", **optim})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_check_optim_accepts_the_shipped_values():
    check_optim(
        {"name": "adam", "lr": 1e-2, "schedule": "cosine", "final_lr_factor": 0.0, "whiten_from": 100}
    )
    check_optim({"name": "sgd", "lr": 1, "momentum": 0.9})


SHORT = (
    "task=static_arith",
    "task.op=add",
    "unit=nau",
    "trainer.max_steps=20",
    "trainer.val_check_interval=10",
)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("seed=-1",), "seed=-1 must be an integer in [0, 4294967295]"),
        (("seed=4294967294", "replicas=4"), "the seeds must stay <= 4294967295"),
        (("trainer.max_steps=5",), "trainer.val_check_interval=10 is more than trainer.max_steps=5"),
        (
            ("trainer.max_steps=5", "replicas=2"),
            "trainer.val_check_interval=10 is more than trainer.max_steps=5",
        ),
        (("trainer.max_steps=0",), "must be a positive integer"),
        (("trainer.val_check_interval=1.5",), "trainer.val_check_interval"),
        (("task.eval_size=abc",), "task.eval_size='abc' must be a positive integer"),
        (("threads=-2",), "threads (null: torch's default)=-2"),
        (("regularizer.start=-1",), "regularizer.start=-1 must be an integer >= 0"),
        (
            ("trainer=ddp_cpu", "trainer.devices=3", "batch_size=100"),
            "batch_size=100 is not divisible by the 3",
        ),
    ],
)
def test_validate_refuses_values_that_fail_later(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*SHORT, *overrides))
    assert message in str(err.value)


def test_validate_accepts_what_the_checks_allow(make_cfg):
    validate(make_cfg(*SHORT, "trainer=ddp_cpu", "trainer.devices=4", "threads=1", "seed=7"))
    validate(make_cfg(*SHORT, "trainer.max_steps=-1", "trainer.max_epochs=1"))
    validate(make_cfg(*SHORT, "trainer.val_check_interval=1.0"))
    validate(make_cfg(*SHORT, "trainer.max_steps=10"))  # validates once, at the last step


def test_hydra_messages_become_one_line():
    from hydra.errors import MissingConfigException

    from nalu_suite.cli.hydra_app import one_line

    err = MissingConfigException(
        "In 'train': Could not find 'unit/nope'\n\nAvailable options in 'unit':\n\tnau\n\tnmu\n"
        "Config search path:\n\tprovider=hydra, path=pkg://hydra.conf\n",
        missing_cfg_file="unit/nope",
    )
    assert one_line(err) == "In 'train': Could not find 'unit/nope'; Available options in 'unit': nau, nmu"
    disk = NotADirectoryError(20, "Not a directory")
    disk.filename = "/x/run"
    assert one_line(disk, "output_dir") == (
        "cannot write the run directory /x/run: Not a directory; set output_dir=<a writable directory>"
    )


def test_clip_text_keeps_a_long_or_multiline_value_on_one_short_line():
    assert clip_text("a\tb\n c") == "a b c"
    long = clip_text("seven " * 10_000)
    assert len(long) == 80 and long.endswith("…")


@pytest.fixture(scope="module")
def num2words_checkpoint(tmp_path_factory):
    import torch

    from nalu_suite.config import compose
    from nalu_suite.system import ArithmeticSystem
    from nalu_suite.train import build_system_kwargs

    system = ArithmeticSystem(**build_system_kwargs(compose(["task=num2words"])))
    path = tmp_path_factory.mktemp("n2w") / "best.ckpt"
    torch.save({"hyper_parameters": dict(system.hparams), "state_dict": system.state_dict()}, path)
    return path


def test_predict_output_stays_tab_separated(num2words_checkpoint, capsys):
    from nalu_suite.predict import main

    assert main([str(num2words_checkpoint), "seven\thundred\nand  seventy seven"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    phrase, value = line.split("\t")
    assert phrase == "seven hundred and seventy seven"
    int(value)


def test_predict_error_cuts_a_huge_phrase(num2words_checkpoint, capsys):
    from nalu_suite.predict import main

    assert main([str(num2words_checkpoint), "seven " * 10_000]) == 2
    assert main([str(num2words_checkpoint), "x" * 10_000]) == 2
    for line in capsys.readouterr().err.splitlines():
        assert len(line) < 500, line[:200]


def _write_idx(folder, name: str, kind: str, count: int) -> None:
    if kind == "images":
        payload = struct.pack(">IIII", 0x00000803, count, 28, 28) + bytes(count * 28 * 28)
    else:
        payload = struct.pack(">II", 0x00000801, count) + bytes(count)
    with gzip.open(folder / f"{name}.gz", "wb") as f:
        f.write(payload)


def test_decompressed_mnist_files_get_the_mode_of_new_files(tmp_path):
    from nalu_suite.tasks.mnist.data import MNIST_FILES, prepare_mnist

    source = tmp_path / "mnist"
    source.mkdir()
    for spec in MNIST_FILES:
        _write_idx(source, spec.name, spec.kind, 3)
    old = os.umask(0o022)
    try:
        raw = prepare_mnist(tmp_path, verify_checksums=False)
    finally:
        os.umask(old)
    for spec in MNIST_FILES:
        assert stat.S_IMODE((raw / spec.name).stat().st_mode) == 0o644, spec.name


def test_an_unwritable_mnist_data_dir_is_one_line(tmp_path):
    from nalu_suite.tasks.mnist.data import MnistFileError, prepare_mnist

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(MnistFileError, match="set paths.data_dir to a writable directory"):
        prepare_mnist(blocker / "data", verify_checksums=False)


def test_a_crash_inside_training_stays_exit_1_and_a_compose_error_is_exit_2(monkeypatch, tmp_path, capsys):
    """Hydra exits 1 for both; ``run_hydra_app`` makes an error before the task function a config error."""
    import sys

    import nalu_suite.cli.train as cli

    def crash(cfg):
        raise OSError(28, "No space left on device")

    monkeypatch.setenv("NALU_ROOT", str(tmp_path))
    monkeypatch.setattr(cli, "train", crash)
    monkeypatch.setattr(sys, "argv", ["nalu-train", "task.op=add", "unit=nau"])
    with pytest.raises(SystemExit) as crashed:
        cli.main()
    assert crashed.value.code == 1
    monkeypatch.setattr(sys, "argv", ["nalu-train", "unit=nonexistent"])
    with pytest.raises(SystemExit) as refused:
        cli.main()
    assert refused.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("config error: In 'train': Could not find")


def test_evaluate_refuses_another_task_than_the_checkpoints(num2words_checkpoint):
    from nalu_suite.evaluate import evaluate

    with pytest.raises(ConfigError, match="task=static_arith but the checkpoint is of task 'num2words'"):
        evaluate(str(num2words_checkpoint), ["task=static_arith"])
