"""Per-sample results appended to a JSONL file, so an interrupted evaluation resumes where it stopped.

Each line is one finished (method, sample) record. On restart the finished keys are read back
and skipped; a torn last line (the process died mid-write) is ignored and counted. Tables are
always computed from the records sorted by key, so a resumed run gives the identical table.

Records are only reused under the settings that made them. The runner passes, per method, the
resolved settings that change a record (data set, matting, the method's own config, metric
networks); every record carries a hash of its method's settings, and ``<file>.settings.json``
keeps the settings themselves. Opening the log with different settings for a method that already
has records is refused (:class:`RecordsMismatchError`, one line naming what differs): a run folder
holds one configuration, and its tables are never silently rewritten from another one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from layeringdiff.errors import UserError

log = logging.getLogger(__name__)

# Keys that do not change a record's values (beyond float noise) and are left out of its hash:
# resuming a CPU run on a GPU, or without progress bars, reuses its records.
UNHASHED_KEYS = frozenset({"device", "progress"})


class RecordsMismatchError(UserError, ValueError):
    """Records in a run folder were made under other settings than this run's."""


def _plain(value: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if str(k) not in UNHASHED_KEYS}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def settings_hash(settings: Mapping) -> str:
    """A short stable hash of (resolved, plain) settings; ``device`` / ``progress`` keys ignored."""
    text = json.dumps(_plain(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def describe_difference(old: Mapping, new: Mapping, limit: int = 3) -> str:
    """``"dataset.size: 32 -> 64, ..."``: the first differing leaves of two settings trees."""
    a, b = _flat(_plain(old)), _flat(_plain(new))
    diffs = [
        f"{k}: {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}"
        for k in sorted({*a, *b})
        if a.get(k) != b.get(k)
    ]
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


class ResultLog:
    """Append-only JSONL of per-sample results, keyed by ``(method, key)``.

    Args:
        path: the ``.jsonl`` file (created with its folder when missing).
        settings: method name -> the resolved settings its records depend on. Records of a
            method are reused only under the same settings (see the module docstring).

    Raises:
        RecordsMismatchError: the file holds records of a method made under other settings.
    """

    def __init__(self, path: str | os.PathLike, settings: Mapping[str, Mapping] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.settings_path = self.path.with_name(self.path.name + ".settings.json")
        self.hashes = {str(m): settings_hash(v) for m, v in (settings or {}).items()}
        self.records: dict[tuple[str, str], dict] = {}
        self.torn = 0
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    self.records[(rec["method"], rec["key"])] = rec
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.torn += 1
            if self.torn:
                log.warning("%s: ignored %d unreadable line(s)", self.path, self.torn)
        if settings:
            self._check_settings({str(m): _plain(v) for m, v in settings.items()})

    def _refuse(self, method: str, why: str) -> RecordsMismatchError:
        return RecordsMismatchError(
            f"{self.path}: the records of '{method}' were made {why}; evaluate into a new run folder "
            f"(the default) or delete {self.path.name} and {self.settings_path.name}"
        )

    def _check_settings(self, settings: dict[str, dict]) -> None:
        from layeringdiff.files import atomic_write_bytes

        stored = {}
        if self.settings_path.is_file():
            try:
                stored = json.loads(self.settings_path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise RecordsMismatchError(f"{self.settings_path}: unreadable ({e})") from None
        for method, current in settings.items():
            if method in stored and settings_hash(stored[method]) != self.hashes[method]:
                raise self._refuse(
                    method, f"with other settings ({describe_difference(stored[method], current)})"
                )
            stale = [
                r
                for (m, _), r in self.records.items()
                if m == method and r.get("config") != self.hashes[method]
            ]
            if stale:  # settings file lost, or records from before settings were recorded
                raise self._refuse(method, f"under unrecorded settings ({len(stale)} record(s))")
        merged = {**stored, **settings}
        if merged != stored:
            atomic_write_bytes(self.settings_path, json.dumps(merged, indent=2, sort_keys=True).encode())

    def done(self, method: str, key: str) -> bool:
        return (method, key) in self.records

    def append(self, method: str, key: str, **values: Any) -> dict:
        """Record one finished sample (flushed and synced before returning)."""
        rec = {"method": method, "key": key, **{k: _clean(v) for k, v in values.items()}}
        if method in self.hashes:
            rec["config"] = self.hashes[method]
        line = json.dumps(rec, sort_keys=True) + "\n"
        with open(self.path, "a") as f:
            if f.tell() and not self._ends_with_newline():
                f.write("\n")
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records[(method, key)] = rec
        return rec

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def of(self, method: str) -> Iterator[dict]:
        """This method's records, sorted by sample key (order-independent tables)."""
        for (m, _), rec in sorted(self.records.items()):
            if m == method:
                yield rec
