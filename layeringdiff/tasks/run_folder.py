"""A run folder that cannot be made ends the entry point in one line, before Hydra tries.

Hydra creates ``hydra.run.dir`` (under ``paths.log_dir``) and opens the log file there before the
task runs; an unwritable or mistyped ``paths.log_dir`` then ended in a traceback from inside
Hydra. :class:`RunFolderCheck` (a Hydra callback, ``configs/hydra/default.yaml``) checks the
folder first and exits with ``error: ...`` and status 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def unusable_folder(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be created and written (``None`` when it can). Creates nothing."""
    path = Path(folder).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


class RunFolderCheck(Callback):
    """Before a run starts: its run folder must be creatable and writable (else one line, exit 1)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = OmegaConf.select(config, "hydra.run.dir", default=None)
        if not folder:
            return
        reason = unusable_folder(str(folder))
        if reason:
            log_dir = OmegaConf.select(config, "paths.log_dir", default=None)
            where = f" (paths.log_dir={log_dir})" if log_dir else ""
            sys.exit(f"error: cannot create the run folder {folder}{where}: {reason}")
