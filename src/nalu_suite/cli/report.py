"""``nalu-report``: markdown table of a Hydra multirun directory (or a ``nalu-table`` directory): seeds
pooled, mean ± std, success rates with Wilson CIs.

    nalu-report logs/static_arith/multiruns/2026-11-22_10-00-00
    nalu-report DIR --metrics test/extrap/success,solved_at,test/extrap/mse --group-by unit,task.op
    nalu-report DIR --plot     # also writes each job's task figures into DIR/figures/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nalu_suite.report import load_jobs, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("multirun_dir", type=Path)
    parser.add_argument(
        "--metrics", help="comma-separated metric names (default: every train/val/test metric)"
    )
    parser.add_argument("--group-by", help="comma-separated override keys (default: all overrides but seed)")
    parser.add_argument("--plot", action="store_true", help="collect the jobs' PNG figures into DIR/figures/")
    args = parser.parse_args(argv)
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    print(report(args.multirun_dir, split(args.metrics), split(args.group_by)))
    if args.plot:
        out = args.multirun_dir / "figures"
        out.mkdir(exist_ok=True)
        for job in load_jobs(args.multirun_dir):
            for png in job.path.glob("*.png"):
                (out / f"{job.path.name}_{png.name}").write_bytes(png.read_bytes())
        print(f"\nfigures copied to {out}")


if __name__ == "__main__":
    main()
