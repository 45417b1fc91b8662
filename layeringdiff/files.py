"""Files written so that a reader never sees half of one: temporary sibling, permissions, rename.

Outputs of every stage (images, shards, manifests, exports, tables, tiny test models) go through
:func:`atomic_file` / :func:`atomic_dir` (or :func:`atomic_write_bytes`) here, so an interrupted
run leaves either the old file or the new one. A run killed outright (``kill -9``, power loss)
leaves its temporary behind: temporaries are named ``.<name>.<random>.<host>-<pid>.tmp``, and the
first temporary a process makes in a folder removes the orphans there (:func:`clean_stale_temporaries`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

#: A temporary whose writer cannot be checked (another host, an older name without the pid, or a
#: pid that is alive again) is only removed once it is this old (seconds).
STALE_TEMP_AGE = 24 * 3600
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
# mkstemp / mkdtemp: prefix ".<name>.", 8 random characters, then our suffix
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}(?:\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+))?\.tmp$")
_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or not checkable): assume alive
    return True


def _is_orphan(name: str, age: float, max_age: float) -> bool:
    match = _TEMP_NAME.match(name)
    if match is None:
        return False
    if age > max_age:
        return True
    pid = int(match["pid"]) if match["pid"] else None
    # the writer is known dead only on this host, and never when it is this process
    return pid is not None and match["host"] == _HOST and pid != os.getpid() and not _pid_alive(pid)


def clean_stale_temporaries(folder: str | os.PathLike, max_age: float = STALE_TEMP_AGE) -> list[Path]:
    """Remove the temporaries of interrupted writes in ``folder`` (not below it).

    A temporary goes when the process that made it (this host, pid in its name) is gone, or when
    it is older than ``max_age`` seconds. A live writer's temporary (this process's threads, a
    concurrent run) is left alone, and so is any name this module does not make.

    Returns:
        The removed paths.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if not _is_orphan(entry.name, age, max_age):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue  # gone already (another cleaner), or not ours to remove
        removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary file(s) left by interrupted writes in %s", len(removed), folder)
    return removed


def _clean_once(folder: Path) -> None:
    """:func:`clean_stale_temporaries` on the first temporary this process makes in ``folder``."""
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    clean_stale_temporaries(folder)


def temp_sibling(path: str | os.PathLike, folder: bool = False) -> Path:
    """Create a new hidden ``.<name>.<random>.<host>-<pid>.tmp`` file or folder beside ``path``
    (0600 / 0700); the first one in a folder clears the orphans of killed writers there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(path.parent)
    kwargs = {"prefix": f".{path.name}.", "suffix": f".{_HOST}-{os.getpid()}.tmp", "dir": path.parent}
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
