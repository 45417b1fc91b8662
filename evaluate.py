"""Evaluate LayeringDiff (or any method's output folders). Examples:

    python evaluate.py eval=table4                              # layer errors vs ground truth
    python evaluate.py eval=table1 eval.methods.ours=outputs/generate/runs/<stamp>/samples
    python evaluate.py eval=table2 eval.methods.ours=DIR eval.methods.layerdiffuse=DIR2
    python evaluate.py eval=generate eval.prompts=data/prompts/quick16.jsonl
    python evaluate.py eval=compare eval.runs=[RUN1,RUN2] eval.table=table4
Resume an interrupted run: add hydra.run.dir=<that run folder>.
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from layeringdiff.tasks.evaluate import evaluate
from layeringdiff.weights import MissingWeightsError

EXPECTED = (MissingWeightsError, FileNotFoundError, ValueError)


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except Exception as e:
        # Bad input or missing weights: one line and a non-zero exit (Hydra wraps errors raised
        # while building a method, so look at the cause chain).
        cause = e
        while not isinstance(cause, EXPECTED) and cause.__cause__ is not None:
            cause = cause.__cause__
        if not isinstance(cause, EXPECTED):
            raise
        logging.getLogger("evaluate").error("%s", cause)
        sys.exit(f"error: {cause}")


if __name__ == "__main__":
    main()
