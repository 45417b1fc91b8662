"""Pieces every task shares: seeding, run-folder bookkeeping, building callbacks and loggers."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

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
    """Turn the ``ckpt_path`` setting into a checkpoint file.

    Args:
        ckpt_path: None, a ``.ckpt`` file, a run folder (its ``checkpoints/last.ckpt``), or
            ``"last"``: the newest ``last.ckpt`` of any earlier run under ``runs_root``.
        runs_root: where runs of this task live (``outputs/<task_name>``).
        current_run: the run folder being started, excluded from the ``"last"`` search.

    Raises:
        FileNotFoundError: the setting names nothing that exists.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        current = Path(current_run).resolve() if current_run else None
        found = [
            p
            for p in Path(runs_root).glob("**/checkpoints/last*.ckpt")
            if current is None or current not in p.resolve().parents
        ]
        if not found:
            raise FileNotFoundError(f"ckpt_path=last: no checkpoints/last.ckpt under {runs_root}")
        return str(max(found, key=lambda p: p.stat().st_mtime))
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no checkpoint file at {path}")
    return str(path)


def run_or_exit(task, cfg: DictConfig, expected: tuple[type[BaseException], ...]):
    """Run an entry point's task; an error the user can fix ends the process with one line.

    Hydra wraps errors raised while instantiating the data or a model, so the cause chain is
    searched for an ``expected`` error; anything else propagates with its traceback.
    """
    import sys

    try:
        return task(cfg)
    except Exception as e:
        cause = e
        while cause is not None and not isinstance(cause, expected):
            cause = cause.__cause__
        if cause is None:
            raise
        message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        log.error("%s", message)
        sys.exit(f"error: {message}")
