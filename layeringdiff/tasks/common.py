"""Pieces every task shares: seeding, run-folder bookkeeping, building callbacks and loggers."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from layeringdiff.errors import MissingFileError

log = logging.getLogger(__name__)


def save_resolved_config(cfg: DictConfig, output_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the fully resolved config into the run folder (Hydra's .hydra/ copy is unresolved)."""
    from layeringdiff.files import atomic_write_bytes

    path = Path(output_dir) / name
    atomic_write_bytes(path, OmegaConf.to_yaml(cfg, resolve=True).encode())
    return path


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a config group such as ``callbacks`` or ``logger``."""
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def resolve_ckpt_path(
    ckpt_path: str | None, runs_root: str | Path, current_run: str | Path | None = None
) -> str | None:
    """Turn the ``ckpt_path`` setting into a checkpoint file that loads.

    Args:
        ckpt_path: None, a ``.ckpt`` file, a run folder (its ``checkpoints/last.ckpt``), or
            ``"last"``: the newest checkpoint of any earlier run under ``runs_root``.
        runs_root: where runs of this task live (``outputs/<task_name>``).
        current_run: the run folder being started, excluded from the ``"last"`` search.

    A checkpoint that does not load (0 bytes, or truncated by a kill during its write) is skipped
    with one warning line, and the newest one that loads is taken instead: for ``"last"`` among
    all earlier runs' checkpoints, for a run folder or a file among the checkpoints beside it.

    Raises:
        MissingFileError: the setting names nothing that exists (a ``FileNotFoundError``).
        CorruptCheckpointError: no candidate loads.
    """
    from layeringdiff.training.checkpoints import newest_loadable, unloadable_reason

    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        current = Path(current_run).resolve() if current_run else None
        found = [
            p
            for p in Path(runs_root).glob("**/checkpoints/*.ckpt")
            if current is None or current not in p.resolve().parents
        ]
        if not any(p.name.startswith("last") for p in found):
            raise MissingFileError(f"ckpt_path=last: no checkpoints/last.ckpt under {runs_root}")
        return newest_loadable(found, "ckpt_path=last")
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise MissingFileError(f"ckpt_path={ckpt_path}: no checkpoint file at {path}")
    if unloadable_reason(path) is None:
        return str(path)
    return newest_loadable(path.parent.glob("*.ckpt"), f"ckpt_path={ckpt_path}")


def _log_to_files(message: str, exc_info) -> None:
    """Write an error with its traceback to the run log's file handlers only (the console gets
    the traceback once, from the propagating exception)."""
    root = logging.getLogger()
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, exc_info)
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def run_or_exit(task, cfg: DictConfig):
    """Run an entry point's task; a :class:`~layeringdiff.errors.UserError` ends the process in one line.

    Hydra wraps errors raised while instantiating the data or a model, so the cause chain is
    searched for a ``UserError``: its first line goes to the log and to stderr, and the process
    exits with status 1. Anything else is a bug or an environment problem: it is written whole
    (with its traceback) to the run log and propagates with its traceback.
    """
    import sys

    from layeringdiff.errors import find_user_error, one_line

    try:
        return task(cfg)
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None:
            _log_to_files(f"{getattr(task, '__name__', 'task')} failed", sys.exc_info())
            raise
        message = one_line(user_error)
        log.error("%s", message)
        sys.exit(f"error: {message}")
