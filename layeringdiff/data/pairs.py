"""Fixed composite lists (e.g. the layering test set): TSV rows ``key fg_id bg_id seed``.

``seed`` is the trimap seed of the composite. Ids are those of the sources' listings (MAGICK
``page_id``; BG-20k / folder ids are relative paths without suffix, made file-name safe).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layeringdiff.data.sources import DataSourceError, ImageEntry, safe_id
from layeringdiff.data.splits import stable_seed
from layeringdiff.files import atomic_write_bytes

COLUMNS = ("key", "fg_id", "bg_id", "seed")


@dataclass(frozen=True)
class Pair:
    key: str
    fg_id: str
    bg_id: str
    seed: int


def pair_key(fg_id: str, bg_id: str) -> str:
    return safe_id(f"{fg_id}--{bg_id}")


def make_pairs(fgs: list[ImageEntry], bgs: list[ImageEntry], num: int, seed: int) -> list[Pair]:
    """Seeded random pairing: ``num`` distinct foregrounds (in hash order), each with a background.

    Foregrounds are ordered by a stable hash of (seed, id), so the first ``num`` are a random but
    reproducible subset; backgrounds are drawn with replacement from a seeded generator.
    """
    if num > len(fgs):
        raise DataSourceError(f"asked for {num} composites but only {len(fgs)} foregrounds are available")
    if not bgs:
        raise DataSourceError("no backgrounds to pair with")
    order = sorted(fgs, key=lambda e: stable_seed("pair-order", seed, e.id))[:num]
    bg_sorted = sorted(bgs, key=lambda e: e.id)
    rng = np.random.default_rng(stable_seed("pair-bg", seed))
    picks = rng.integers(0, len(bg_sorted), num)
    return [
        Pair(pair_key(fg.id, bg_sorted[j].id), fg.id, bg_sorted[j].id, stable_seed("trimap", seed, fg.id))
        for fg, j in zip(order, picks.tolist())
    ]


def write_pair_list(path: str | os.PathLike, pairs: list[Pair]) -> Path:
    """Write the list atomically (TSV with header)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(COLUMNS)
    for p in pairs:
        w.writerow([p.key, p.fg_id, p.bg_id, p.seed])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return Path(path)


def read_pair_list(path: str | os.PathLike) -> list[Pair]:
    """Read a list written by :func:`write_pair_list`; one-line error naming the file if malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"{path}: no such pair list")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise DataSourceError(f"{path}: expected columns {COLUMNS}, got {reader.fieldnames}")
        try:
            return [Pair(r["key"], r["fg_id"], r["bg_id"], int(r["seed"])) for r in reader]
        except (TypeError, ValueError) as e:
            raise DataSourceError(f"{path}: malformed row ({e})") from None
