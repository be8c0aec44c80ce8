"""Evaluate a checkpoint: ``python eval.py ckpt_path=PATH [task.extrap_length=2000 ...]`` (= ``nalu-eval``)."""

from nalu_suite.cli.eval import main

if __name__ == "__main__":
    main()
