"""``nalu-preview`` from a checkout: ``python scripts/preview.py task=static_arith task.op=mul n=3``."""

from nalu_suite.cli.preview import main

if __name__ == "__main__":
    main()
