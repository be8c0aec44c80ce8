"""``nalu-report`` from a checkout: ``python scripts/report.py MULTIRUN_DIR [--metrics ...]``."""

from nalu_suite.cli.report import main

if __name__ == "__main__":
    main()
