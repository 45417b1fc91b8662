"""Files written so that a reader never sees half of one: temporary sibling, permissions, rename.

Outputs of every stage (images, shards, manifests, exports, tables, tiny test models) go through
:func:`atomic_file` / :func:`atomic_dir` (or :func:`atomic_write_bytes`) here, so an interrupted
run leaves either the old file or the new one, and no temporary behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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


def temp_sibling(path: str | os.PathLike, folder: bool = False) -> Path:
    """Create a new hidden ``.<name>.<random>.tmp`` file or folder beside ``path`` (0600 / 0700)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"prefix": f".{path.name}.", "suffix": ".tmp", "dir": path.parent}
    if folder:
        return Path(tempfile.mkdtemp(**kwargs))
    fd, tmp = tempfile.mkstemp(**kwargs)
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling file to write; on success it becomes ``path`` (umask permissions).

    On any error inside the block the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        set_default_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a new empty sibling folder to fill; on success it is renamed to ``path``.

    Args:
        path: the folder to publish. It may be absent or an empty folder; a non-empty one makes the
            rename fail (``OSError``) unless ``replace``, which removes it first (not atomic: only
            for folders the caller has checked are its own, e.g. a previous export).

    On any error (inside the block or in the rename) the temporary folder is removed. A caller that
    races other processes building the same folder may catch the ``OSError`` and accept theirs.
    """
    path = Path(path)
    tmp = temp_sibling(path, folder=True)
    try:
        yield tmp
        set_default_permissions(tmp)  # mkdtemp makes it 0700
        if replace and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def settings_diff(old: Mapping, new: Mapping) -> dict:
    """``{key: (old value, new value)}`` for every key whose value differs (or is missing on a side)."""
    return {k: (old.get(k), new.get(k)) for k in {**old, **new} if old.get(k) != new.get(k)}


def record_settings(path: str | os.PathLike, settings: Mapping, error: type[Exception] = ValueError) -> None:
    """Guard of a resumable cache folder: write ``settings`` to ``path`` (JSON) the first time; later,
    raise ``error`` naming what differs when a run with other settings would mix into the folder."""
    path = Path(path)
    if not path.is_file():
        atomic_write_bytes(path, json.dumps(dict(settings), indent=2).encode())
        return
    diff = settings_diff(json.loads(path.read_text()), settings)
    if diff:
        raise error(f"{path}: made with other settings {diff} (old, new); use another output folder")
