"""Files written so that a reader never sees half of one: temporary sibling, permissions, rename.

Outputs of every stage (images, shards, manifests, exports, tables) go through :func:`atomic_write_bytes`
or its relatives here, so an interrupted run leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _read_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _read_umask()  # read once, at import: toggling it later would race with other threads


def set_default_permissions(path: str | os.PathLike) -> None:
    """Give a file or folder the mode plain ``open`` / ``mkdir`` would (under the umask).

    ``tempfile.mkstemp`` / ``mkdtemp`` create 0600 / 0700 entries; outputs renamed from them into
    place (shards, manifests, exports) would otherwise be unreadable to anyone else.
    """
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        set_default_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
