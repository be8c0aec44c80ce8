"""``nalu-bench``: run one benchmark and write its table, CSV and figure (docs/benchmarks.md).

    nalu-bench smat --op add --out logs/smat_add [threads=1 ...]
    nalu-bench smat --op div --task division --out logs/division
    nalu-bench ten_param --out logs/ten_param

Trailing ``KEY=VALUE`` arguments are ``train.py`` overrides applied to every cell.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nalu_suite.tasks.smat import RANGES, SMAT_OPS, selected_ranges

SMAT_TASKS = ("smat", "division")


def _ranges(text: str) -> list[int]:
    from nalu_suite.errors import ConfigError

    value = "all" if text == "all" else [int(v) if v.strip().isdigit() else v for v in text.split(",")]
    try:
        return list(selected_ranges(value))
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).replace("task.range", "--ranges")) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="benchmark", required=True)

    smat = sub.add_parser("smat", help="the Primer's single module arithmetic task, one op")
    smat.add_argument("--op", required=True, choices=SMAT_OPS)
    smat.add_argument(
        "--task", default="smat", choices=SMAT_TASKS, help="smat (default) or division (input 10)"
    )
    smat.add_argument("--modules", default=None, help="comma-separated unit configs (default: the op's list)")
    smat.add_argument("--ranges", type=_ranges, default=list(RANGES), help="comma-separated 1..9 or all")
    smat.add_argument("--seeds", type=int, default=25, help="seeds per range (default 25)")
    smat.add_argument("--out", type=Path, required=True)
    smat.add_argument("overrides", nargs="*", help="train.py overrides for every cell, e.g. threads=1")

    ten = sub.add_parser("ten_param", help="the NAU paper's 10-parameter task")
    ten.add_argument("--units", default="nmu,nalu,nac_mul", help="comma-separated unit configs")
    ten.add_argument("--seeds", type=int, default=100, help="seeds (default 100)")
    ten.add_argument("--out", type=Path, required=True)
    ten.add_argument("overrides", nargs="*", help="train.py overrides for every cell")

    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: must be at least 1")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.benchmark == "smat":
        from nalu_suite.benchmarks.smat import default_modules, run_smat
        from nalu_suite.errors import ConfigError
        from nalu_suite.recipes import unit_config

        modules = args.modules.split(",") if args.modules else list(default_modules(args.op, args.task))
        for module in modules:
            try:
                unit_config(module)
            except ConfigError as err:
                parser.error(f"--modules: {err}")
        run_smat(args.op, modules, args.ranges, args.seeds, args.out, args.overrides, task=args.task)
    else:
        from nalu_suite.benchmarks.ten_param import run_ten_param

        run_ten_param([u for u in args.units.split(",") if u], args.seeds, args.out, args.overrides)


if __name__ == "__main__":
    main()
