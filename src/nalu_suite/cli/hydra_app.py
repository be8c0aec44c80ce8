"""Run a Hydra app with the project's exit codes: a config error is one line and exit status 2.

Hydra reports its own errors (an unknown group option such as ``unit=nonexistent``, a key that is not in
the config, bad override syntax, a run directory it cannot create) as several lines, sometimes a
traceback, and exit status 1, the status of a crash. :func:`run_hydra_app` turns such an error, raised
before the task function starts, into ``config error: <one line>`` and exit status 2; an error inside the
task function (a crash during training) is reported by Hydra as before (exit 1).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

#: lines of Hydra's messages that say nothing about the user's mistake
NOISE = ("full_key:", "object_type=", "reference_type=", "See https://hydra.cc", "To append to your")


def one_line(err: BaseException, run_dir_key: str = "hydra.run.dir") -> str:
    """Hydra's (or OmegaConf's) message for a config error, on one line; an ``OSError`` names the run
    directory that could not be written and the key that moves it."""
    from hydra.errors import HydraException

    if isinstance(err, OSError) and not isinstance(err, HydraException):  # MissingConfigException is both
        where = err.filename or str(err)
        reason = err.strerror or err
        return f"cannot write the run directory {where}: {reason}; set {run_dir_key}=<a writable directory>"
    text = str(err)
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += "\n" + str(cause)
    parts: list[str] = []
    options: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break
        if options is not None and raw.startswith(("\t", " ")) and line:
            options.append(line)
            continue
        if options:
            parts[-1] += " " + ", ".join(options)
        options = None
        if not line or line.startswith(NOISE):
            continue
        if line.startswith("Available options in"):
            options = []
        parts.append(line.rstrip("."))
    if options:
        parts[-1] += " " + ", ".join(options)
    return "; ".join(parts) or type(err).__name__


def is_config_error(err: BaseException) -> bool:
    """An error Hydra raises while composing the config or preparing the run directory."""
    from hydra.errors import HydraException, InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, InstantiationException):  # raised by our code's instantiate(), in a job
        return False
    return isinstance(err, (HydraException, OmegaConfBaseException, OSError))


def run_hydra_app(
    config_path: str,
    config_name: str,
    task_function: Callable[[Any], Any],
    run_dir_key: str = "hydra.run.dir",
) -> None:
    """``hydra.main(config_path, config_name)(task_function)()`` with config errors as one line, exit 2."""
    import hydra
    from hydra._internal import utils as hydra_utils

    started = False

    @functools.wraps(task_function)  # keeps the job name Hydra derives from the task function
    def task(cfg):
        nonlocal started
        started = True
        return task_function(cfg)

    original = hydra_utils.run_and_report

    def run_and_report(func):
        def guarded():
            try:
                return func()
            except Exception as err:
                if started or not is_config_error(err):
                    raise
                print(f"config error: {one_line(err, run_dir_key)}", file=sys.stderr)
                sys.exit(2)

        return original(guarded)

    hydra_utils.run_and_report = run_and_report
    try:
        hydra.main(config_path=config_path, config_name=config_name, version_base="1.3")(task)()
    finally:
        hydra_utils.run_and_report = original
