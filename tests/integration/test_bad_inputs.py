"""Bad input on the command lines ends with one line naming the value and what is valid, exit status 2,
before any training: no traceback, no run.

One table of ``(command, arguments, expected status, a substring of the last stderr line)``. The cases run
in one fresh Python process that imports the package once and then forks a child per case which calls
the command's ``main()`` with that ``sys.argv``: the real entry point as a subprocess would run it, at a
fraction of the import cost (no torch computation happens in the parent before it forks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TRAIN, EVAL, PREVIEW, PREDICT = (
    "nalu_suite.cli.train",
    "nalu_suite.cli.eval",
    "nalu_suite.cli.preview",
    "nalu_suite.predict",
)
BASE = [
    "task=static_arith",
    "task.op=add",
    "unit=nau",
    "task.eval_size=100",
    "logger=none",
    "callbacks.progress_bar=null",
]
SHORT = ["trainer.max_steps=20", "trainer.val_check_interval=10"]

# {static}: a static_arith checkpoint; {rand}: random bytes; {dir}: a directory; {file}: a regular file
CASES = [
    # issue 18 item 7: a run that would never validate
    (
        TRAIN,
        ["task=static_arith", "trainer.max_steps=50"],
        "trainer.val_check_interval=1000 is more than trainer.max_steps=50",
    ),
    (TRAIN, [*BASE, *SHORT, "task.eval_size=0"], "task.eval_size=0 must be a positive integer"),
    # item 8: the learning rate
    (TRAIN, [*BASE, *SHORT, "optim.lr=-1"], "optim.lr=-1 must be > 0"),
    (TRAIN, [*BASE, *SHORT, "optim.lr=-1", "replicas=4"], "optim.lr=-1 must be > 0"),
    (TRAIN, [*BASE, *SHORT, "optim.lr=abc"], "optim.lr='abc' must be a finite number"),
    (TRAIN, [*BASE, *SHORT, "optim.lr=nan"], "optim.lr=nan must be a finite number"),
    (TRAIN, [*BASE, *SHORT, "+optim.momentum=0.9"], "optim.momentum=0.9: torch.optim.Adam refuses"),
    # item 9: values that ended in a traceback
    (
        TRAIN,
        [*BASE, "trainer.max_steps=abc"],
        "trainer.max_steps (-1: no step limit)='abc' must be a positive integer",
    ),
    (TRAIN, [*BASE, *SHORT, "seed=-1"], "seed=-1 must be an integer in [0, 4294967295]"),
    (TRAIN, [*BASE, *SHORT, "seed=-1", "replicas=4"], "seed=-1 must be an integer in [0, 4294967295]"),
    (TRAIN, [*BASE, "trainer.max_steps=20", "trainer.val_check_interval=0"], "trainer.val_check_interval"),
    (
        TRAIN,
        [*BASE, *SHORT, "trainer=ddp", "trainer.devices=3"],
        "use trainer=cpu (one process) or trainer=ddp_cpu",
    ),
    (
        TRAIN,
        [*BASE, *SHORT, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=3"],
        "batch_size=128 is not divisible by the 3 processes",
    ),
    (TRAIN, ["task=num2words", *SHORT, "ckpt_path={rand}"], "is not a readable PyTorch checkpoint"),
    (TRAIN, ["task=num2words", *SHORT, "ckpt_path={dir}"], "is a directory"),
    (
        TRAIN,
        ["task=num2words", *SHORT, "ckpt_path={static}"],
        "is a checkpoint of task 'static_arith', not 'num2words'",
    ),
    (TRAIN, [*BASE, *SHORT, "hydra.run.dir={file}/run"], "cannot write the run directory"),
    (
        TRAIN,
        ["task=mnist_add", *SHORT, "paths.data_dir={file}/data"],
        "cannot write the decompressed MNIST files",
    ),
    # more of the same kind
    (TRAIN, [*BASE, *SHORT, "batch_size=0"], "batch_size=0 must be a positive integer"),
    (TRAIN, [*BASE, *SHORT, "batch_size=abc"], "batch_size='abc' must be a positive integer"),
    (TRAIN, ["task=recurrent_arith", *SHORT, "task.op=mull"], "task.op='mull' is not valid"),
    (TRAIN, [*BASE, *SHORT, "replicas=-1"], "replicas=-1 must be a positive integer"),
    (TRAIN, [*BASE, *SHORT, "threads=0"], "threads (null: torch's default)=0 must be a positive integer"),
    (TRAIN, [*BASE, *SHORT, "regularizer.weight=-1"], "regularizer.weight=-1 must be >= 0"),
    (TRAIN, [*BASE, *SHORT, "trainer.devices=0"], "trainer.devices=0 must be a positive integer"),
    # Hydra's own errors: exit 2 (not Hydra's 1), one line
    (
        TRAIN,
        [*BASE, "unit=nonexistent"],
        "Could not find 'unit/nonexistent'; Available options in 'unit': auto,",
    ),
    (TRAIN, [*BASE, "logger=nonexistent"], "Could not find 'logger/nonexistent'"),
    (TRAIN, [*BASE, "trainer.max_stepz=1"], "Could not override 'trainer.max_stepz'"),
    (TRAIN, [*BASE, "task.op=["], "no viable alternative at input"),
    # nalu-eval
    (
        EVAL,
        ["ckpt_path={static}", "output_dir={dir}/eval", "task.hidden_size=3"],
        "task.hidden_size=3 does not fit the checkpoint's model (size mismatch",
    ),
    (
        EVAL,
        ["ckpt_path={static}", "task=num2words"],
        "nalu-eval tests the task the checkpoint was trained on",
    ),
    (EVAL, ["ckpt_path={rand}"], "is not a readable PyTorch checkpoint"),
    (EVAL, ["ckpt_path={dir}/missing.ckpt"], "no such file"),
    (EVAL, ["ckpt_path={static}", "output_dir={file}/out"], "cannot write the run directory"),
    (
        EVAL,
        ["ckpt_path={static}", "output_dir={dir}/eval", "batch_size=0"],
        "batch_size=0 must be a positive integer",
    ),
    # nalu-preview
    (PREVIEW, ["n=abc"], "n='abc' must be a positive integer"),
    (PREVIEW, ["n=-1"], "n='-1' must be a positive integer"),
    (PREVIEW, ["unit=nonexistent"], "Could not find 'unit/nonexistent'"),
    # nalu-predict: a 10,000-word phrase is echoed cut to one short line
    (PREDICT, ["{num2words}", " ".join(["seven"] * 10_000)], "'seven seven seven"),
]

DRIVER = r"""
import importlib, json, os, sys, time
cases, out_dir = json.loads(sys.argv[1]), sys.argv[2]
for module in {case[0] for case in cases}:
    importlib.import_module(module)
# what the cases import lazily, once here (an optimiser's first construction imports torch._dynamo)
import torch, lightning, nalu_suite.system, nalu_suite.replicas, nalu_suite.evaluate
torch.optim.Adam([torch.zeros(1, requires_grad=True)])
results = []
for i, (module, argv) in enumerate(cases):
    err_path = os.path.join(out_dir, f"{i}.err")
    started = time.time()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            sys.stderr = open(2, "w", closefd=False)
            sys.stdout = open(1, "w", closefd=False)
            sys.argv = [module, *argv]
            result = importlib.import_module(module).main()
            code = result if isinstance(result, int) else 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 99
        finally:
            sys.stderr.flush(); sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    results.append({"rc": os.waitstatus_to_exitcode(status), "seconds": time.time() - started})
print(json.dumps(results))
"""


def _write_static_checkpoint(path: Path, task: str = "static_arith") -> None:
    """A checkpoint as a run writes it (hyper-parameters and weights), without training."""
    import torch

    from nalu_suite.config import compose
    from nalu_suite.system import ArithmeticSystem
    from nalu_suite.train import build_system_kwargs

    overrides = [*BASE[:3]] if task == "static_arith" else [f"task={task}"]
    system = ArithmeticSystem(**build_system_kwargs(compose([*overrides, *SHORT])))
    torch.save(
        {"hyper_parameters": dict(system.hparams), "state_dict": system.state_dict(), "global_step": 0}, path
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Run every case; ``{case index: (status, stderr, seconds)}``, and the data/logs root they used."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    files = {
        "static": tmp / "static.ckpt",
        "num2words": tmp / "num2words.ckpt",
        "rand": tmp / "random.ckpt",
        "dir": tmp / "a_dir",
        "file": tmp / "a_file",
    }
    _write_static_checkpoint(files["static"])
    _write_static_checkpoint(files["num2words"], "num2words")
    files["rand"].write_bytes(os.urandom(3000))
    files["dir"].mkdir()
    files["file"].write_text("not a directory\n")
    cases = [(module, [a.format(**files) for a in argv]) for module, argv, _ in CASES]
    errs = tmp / "stderr"
    errs.mkdir()
    root = tmp / "root"
    env = dict(os.environ, WANDB_MODE="disabled", NALU_ROOT=str(root), PYTHONUNBUFFERED="1")
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cases), str(errs)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {i: (r["rc"], (errs / f"{i}.err").read_text(), r["seconds"]) for i, r in enumerate(results)}, root


@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[f"{m.rsplit('.', 1)[-1]}:{' '.join(a)[-60:]}" for m, a, _ in CASES]
)
def test_bad_input_is_one_line_and_exit_2(outcomes, index):
    results, _ = outcomes
    status, stderr, _ = results[index]
    expected = CASES[index][2]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no error message"
    assert status == 2, stderr[-3000:]
    assert expected in lines[-1], lines[-1]
    assert lines[-1].startswith(("config error: ", "error: ")), lines[-1]
    assert len(lines[-1]) < 700, f"{len(lines[-1])} characters"


def test_nothing_trained(outcomes):
    """Every case stopped before training: no checkpoint or results file anywhere under the run root."""
    _, root = outcomes
    written = [p for p in root.rglob("*") if p.suffix == ".ckpt" or p.name == "results.json"]
    assert not written
