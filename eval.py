"""Evaluate a checkpoint: ``python eval.py ckpt_path=PATH [task.KEY=VALUE ...]`` (= ``nalu-eval``)."""

from nalu_suite.cli.eval import main

if __name__ == "__main__":
    main()
