"""Make layers (see configs/infer.yaml for every option). Examples:

    python infer.py                                   # decompose the bundled photo (CPU, no weights)
    python infer.py image=photo.jpg box=[40,20,300,380] out=layers/photo
    python infer.py pipeline=paper layering=layeringdiff prompt="A bird flying at sunset over the mountains" foreground_indices=[0,1,2]

Bad input ends with one line on stderr and exit status 1 (no traceback, nothing half-written).
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from layeringdiff.export import PREVIEW_NAME
from layeringdiff.tasks.common import run_or_exit
from layeringdiff.tasks.infer import infer
from layeringdiff.tasks.infer_batch import batch_failure


@hydra.main(version_base="1.3", config_path="configs", config_name="infer.yaml")
def main(cfg: DictConfig) -> None:
    result = run_or_exit(infer, cfg)
    for path in result["out_dirs"]:
        print(path)
    for path in result["out_dirs"]:  # the preview(s) last: the one file to open first
        print(Path(path) / PREVIEW_NAME)
    failure = batch_failure(result)  # a batch with a failed line exits non-zero (the rest is written)
    if failure:
        sys.exit(f"error: {failure}")


if __name__ == "__main__":
    main()
