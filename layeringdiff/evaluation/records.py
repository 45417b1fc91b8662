"""Per-sample results appended to a JSONL file, so an interrupted evaluation resumes where it stopped.

Each line is one finished (method, sample) record. On restart the finished keys are read back
and skipped; a torn last line (the process died mid-write) is ignored and counted. Tables are
always computed from the records sorted by key, so a resumed run gives the identical table.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


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
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
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

    def done(self, method: str, key: str) -> bool:
        return (method, key) in self.records

    def append(self, method: str, key: str, **values: Any) -> dict:
        """Record one finished sample (flushed and synced before returning)."""
        rec = {"method": method, "key": key, **{k: _clean(v) for k, v in values.items()}}
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
