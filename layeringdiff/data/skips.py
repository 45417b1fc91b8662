"""Counting the samples a data set skips, across loader workers, with a rate-limited warning.

A data set whose records are all unreadable would otherwise log one warning per record for ever
(hundreds of thousands of lines a minute). :class:`SkipCounter` warns for the first
``FIRST_WARNINGS`` skips, then for every ``WARN_EVERY``-th one with the running count; the count
itself lives in shared memory, so the trainer (``layeringdiff.training.data_health``) can report
the skips of every loader worker at the end of each epoch.
"""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing import context as mp_context

log = logging.getLogger(__name__)

FIRST_WARNINGS = 10
WARN_EVERY = 1000


class SkipCounter:
    """A skip count shared by a data set's copies in the loader worker processes.

    Args:
        what: what a skipped item is called in the warnings ("sample", "shard record").
    """

    def __init__(self, what: str = "sample") -> None:
        self.what = what
        # a spawn-context lock also reaches spawned loader workers (a fork-context one is refused)
        self._shared = multiprocessing.get_context("spawn").Value("q", 0)
        self._local = 0

    def note(self, reason: object) -> int:
        """Count one skipped item; warn (rate-limited) with its one-line ``reason``. Returns the count."""
        if self._shared is None:
            self._local += 1
            n = self._local
        else:
            with self._shared.get_lock():
                self._shared.value += 1
                n = self._shared.value
        if n <= FIRST_WARNINGS or n % WARN_EVERY == 0:
            later = f"; further ones are logged every {WARN_EVERY}th" if n == FIRST_WARNINGS else ""
            log.warning("skipped %s %s (%d skipped so far%s)", self.what, reason, n, later)
        return n

    @property
    def count(self) -> int:
        return self._local if self._shared is None else int(self._shared.value)

    def __getstate__(self) -> dict:
        # Starting a loader worker (spawn) may pass the shared counter; any other pickling (a deep
        # copy, a saved object) gets a private snapshot of the count.
        if mp_context.get_spawning_popen() is not None:
            return {"what": self.what, "_shared": self._shared, "_local": 0}
        return {"what": self.what, "_shared": None, "_local": self.count}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def skipped_count(dataset) -> int:
    """Skips counted by ``dataset`` and the data sets it wraps (``.dataset``), 0 when none counts."""
    total, seen = 0, set()
    while dataset is not None and id(dataset) not in seen:
        seen.add(id(dataset))
        counter = getattr(dataset, "skip_counter", None)
        total += counter.count if isinstance(counter, SkipCounter) else 0
        dataset = getattr(dataset, "dataset", None)
    return total
