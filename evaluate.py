"""Evaluate LayeringDiff (or any method's output folders). Examples:

    python evaluate.py eval=table4                              # layer errors vs ground truth
    python evaluate.py eval=table1 eval.methods.ours=outputs/generate/runs/<stamp>/samples
    python evaluate.py eval=table2 eval.methods.ours=DIR eval.methods.layerdiffuse=DIR2
    python evaluate.py eval=generate eval.prompts=data/prompts/quick16.jsonl
    python evaluate.py eval=compare eval.runs=[RUN1,RUN2] eval.table=table4
Resume an interrupted run: add hydra.run.dir=<that run folder>.
A setting or input the user can fix (a UserError) ends with one line and exit status 1; any
other error keeps its traceback, which is also written to <run folder>/evaluate.log.
"""

import hydra
from omegaconf import DictConfig

from layeringdiff.tasks.common import run_or_exit
from layeringdiff.tasks.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> None:
    run_or_exit(evaluate, cfg)


if __name__ == "__main__":
    main()
