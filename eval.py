"""Evaluate a checkpoint: ``python eval.py ckpt_path=PATH [task.extrap_length=2000 ...]`` (see README.md)."""

import sys

from nalu_suite.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
