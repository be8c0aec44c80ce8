"""``nalu-preview``: print samples of any task as JSON lines: what the model really sees.

    nalu-preview task=static_arith task.op=mul n=3
    nalu-preview task=num2words n=5
    nalu-preview task=program_eval task.kind=programs n=2

Arguments are Hydra overrides, as for ``nalu-train``, plus ``n=<samples>`` (default 5). Each line holds a
human-readable ``text`` where the task has one, the numeric ``inputs`` and the ``target``.
"""

from __future__ import annotations

import json
import sys

from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nalu_suite.config import compose
from nalu_suite.errors import ConfigError
from nalu_suite.tasks import build_task


def run(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    n, overrides = 5, []
    for arg in argv:
        if arg.startswith("n="):
            try:
                n = int(arg[2:])
            except ValueError:
                n = -1
            if n < 1:
                print(
                    f"config error: n={arg[2:]!r} must be a positive integer (samples to print)",
                    file=sys.stderr,
                )
                return 2
        else:
            overrides.append(arg)
    try:
        cfg = compose(overrides)
        task = build_task(
            OmegaConf.to_container(cfg.task, resolve=True),
            OmegaConf.to_container(cfg.unit, resolve=True),
            int(cfg.seed),
        )
        rows = task.preview(n)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as err:  # an unknown option or key, bad syntax
        from nalu_suite.cli.hydra_app import one_line

        print(f"config error: {one_line(err)}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row))
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
