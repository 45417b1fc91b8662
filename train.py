"""Train a LayeringDiff network. Examples:

    python train.py experiment=fbdd_smoke
    python train.py experiment=fbdd_fg logger=wandb
    python train.py -m experiment=fbdd_smoke model.optimizer.lr=1e-4,3e-4

Missing weights or data and bad settings (UserErrors) end with one line on stderr and exit
status 1; any other error keeps its traceback, which is also written to the run log.
"""

import hydra
from omegaconf import DictConfig

from layeringdiff.tasks.common import run_or_exit
from layeringdiff.tasks.train import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> None:
    run_or_exit(train, cfg)


if __name__ == "__main__":
    main()
