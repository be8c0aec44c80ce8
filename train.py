"""Train a model: ``python train.py task=num2words unit=nalu`` (see README.md and conf/train.yaml)."""

from pathlib import Path

from nalu_suite.train import main

if __name__ == "__main__":
    main(Path(__file__).parent / "conf")
