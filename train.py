"""Train a model: ``python train.py task=num2words`` (the same as ``nalu-train``; docs/usage.md)."""

from nalu_suite.cli.train import main

if __name__ == "__main__":
    main()
