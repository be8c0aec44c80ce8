"""Train a model: ``python train.py task=num2words unit=nalu`` (see README.md and conf/train.yaml)."""

import hydra

from nalu_suite.train import run

if __name__ == "__main__":
    hydra.main(config_path="conf", config_name="train", version_base="1.3")(run)()
