"""Train a LayeringDiff network. Examples:

python train.py experiment=fbdd_smoke
python train.py experiment=fbdd_fg logger=wandb
python train.py -m experiment=fbdd_smoke model.optimizer.lr=1e-4,3e-4
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from layeringdiff.tasks.train import train
from layeringdiff.weights import MissingWeightsError

# Missing weights / data, bad settings (FBDDInputError, DataSourceError are ValueErrors).
EXPECTED = (MissingWeightsError, FileNotFoundError, ValueError)


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except Exception as e:
        # One line and a non-zero exit; Hydra wraps errors raised while building the data or the
        # model, so look along the cause chain.
        cause = e
        while not isinstance(cause, EXPECTED) and cause.__cause__ is not None:
            cause = cause.__cause__
        if not isinstance(cause, EXPECTED):
            raise
        logging.getLogger("train").error("%s", cause)
        sys.exit(f"error: {cause}")


if __name__ == "__main__":
    main()
