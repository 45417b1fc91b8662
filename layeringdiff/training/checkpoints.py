"""Checkpoints that are never torn, and a resume that skips the ones that are.

:class:`AtomicCheckpointIO` is the trainer's checkpoint writer: it writes ``.<name>.<random>.<host>-<pid>.tmp``
in the checkpoint's own folder, syncs it and renames it over the destination, so a kill at any
moment leaves the old checkpoint or the new one. (Lightning's default writer goes through a
temporary file in the system's temporary folder; on another file system its final "move" is a
copy, and a kill during the copy leaves a 0-byte or truncated ``last.ckpt``.)

:func:`newest_loadable` picks the checkpoint a resume starts from: the newest candidate whose
file is a complete checkpoint, saying in one line which ones it skipped and why.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from layeringdiff.errors import UserError

log = logging.getLogger(__name__)


class CorruptCheckpointError(UserError, ValueError):
    """No checkpoint that a resume could start from loads (all empty, truncated or not checkpoints)."""


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse to sync a folder; the rename is still atomic
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary beside the destination, fsync, ``os.replace``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        import torch

        from layeringdiff.files import set_default_permissions, temp_sibling

        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        tmp = temp_sibling(path)
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            set_default_permissions(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)


def unloadable_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a complete checkpoint (``None`` when it is).

    A checkpoint is a zip archive (``torch.save``); a torn write lacks its end, where the archive's
    directory lives, and a corrupted one fails the CRC of a member. Nothing is unpickled.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    if size == 0:
        return "it is empty (0 bytes)"
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(n.endswith("data.pkl") for n in archive.namelist()):
                return "it is not a PyTorch checkpoint"
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        return f"it is truncated or not a checkpoint ({size} bytes: {e})"
    return f"its member {bad} is corrupt" if bad else None


def newest_loadable(candidates: Iterable[Path], what: str) -> str:
    """The newest (by modification time) candidate that loads; one warning line per skipped one.

    Raises:
        CorruptCheckpointError: none loads (``what`` says which setting asked).
    """
    ordered = sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True)
    skipped = []
    for path in ordered:
        reason = unloadable_reason(path)
        if reason is None:
            if skipped:
                log.warning("%s: resuming from %s, the newest checkpoint that loads", what, path)
            return str(path)
        skipped.append(path)
        log.warning("%s: skipping %s: %s", what, path, reason)
    names = ", ".join(str(p) for p in skipped[:3]) + (
        f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    )
    raise CorruptCheckpointError(f"{what}: no checkpoint loads ({names} are empty, truncated or corrupt)")
