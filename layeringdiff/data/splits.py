"""Stable hashing for splits, pairings and per-sample seeds.

Python's built-in ``hash`` is salted per process; everything here goes through ``hashlib`` so a
sample id lands in the same split, and a sample gets the same seed, on every machine and run.
"""

from __future__ import annotations

import hashlib

from layeringdiff.errors import ConfigError

SPLITS = ("train", "val", "test")
# Default fractions for data sets without an official split (MAGICK): 98% / 1% / 1%.
DEFAULT_FRACTIONS = {"train": 0.98, "val": 0.01, "test": 0.01}


def stable_hash(*parts: object) -> int:
    """64-bit integer from the SHA-1 of the parts joined by '/'; identical across processes."""
    text = "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) determined by the parts (uniform over ids)."""
    return stable_hash(*parts) / 2.0**64


def stable_seed(*parts: object) -> int:
    """A 63-bit seed for ``numpy.random.default_rng`` determined by the parts."""
    return stable_hash(*parts) >> 1


def split_of(sample_id: str, fractions: dict[str, float] | None = None, salt: str = "layeringdiff") -> str:
    """The split a sample id belongs to, by a stable hash of ``salt/sample_id``.

    Args:
        sample_id: the data set's own id (e.g. a MAGICK ``page_id`` or a file stem).
        fractions: split name -> fraction, in order; must sum to 1. Defaults to 98/1/1.
        salt: changes the whole assignment when changed; keep it fixed for a data set.

    Returns:
        The split name.
    """
    fractions = DEFAULT_FRACTIONS if fractions is None else dict(fractions)
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must sum to 1, got {fractions} (sum {total})")
    u = stable_unit(salt, sample_id)
    edge = 0.0
    for name, frac in fractions.items():
        edge += frac
        if u < edge:
            return name
    return list(fractions)[-1]
