"""Writing WebDataset shards (layout and member format: :mod:`layeringdiff.data.shards`).

Each shard is written atomically; its per-shard JSON, written after the tar, marks it finished, so
an interrupted run resumes where it stopped and a run with other settings refuses to mix in.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from layeringdiff.data.shards import FORMAT, encode_sample
from layeringdiff.data.sources import BadSampleError, DataSourceError
from layeringdiff.files import atomic_file, atomic_write_bytes, settings_diff

log = logging.getLogger(__name__)


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}"


def write_shard(path: Path, records: list[dict]) -> None:
    """Write a tar of records to ``path`` atomically (temp file in the same folder, then rename)."""
    import webdataset as wds

    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        writer = wds.TarWriter(f, encoder=False)
        for rec in records:
            writer.write(rec)
        writer.close()


def write_shards(
    dataset,
    out_dir: str | os.PathLike,
    split: str,
    samples_per_shard: int = 1000,
    image_format: str = "png",
    num_samples: int | None = None,
    description: dict | None = None,
) -> dict:
    """Write ``dataset`` (anything with ``load(i)`` and ``len``) as shards; return the manifest.

    Shards already finished (tar + per-shard JSON present) are skipped, so an interrupted run
    resumes where it stopped. Samples whose ``load`` raises :class:`BadSampleError` are skipped
    and recorded with their reason.

    Args:
        dataset: a source data set (``SyntheticLayers``, ``FolderComposites``).
        out_dir: shard root; shards go to ``out_dir/split``.
        split: split name, used in file names.
        samples_per_shard: source indices per shard (a shard holds fewer when samples are bad).
        image_format: "png" (default), "tiff" (smaller, faster to read) or "npy" (raw) for foreground / background.
        num_samples: how many source indices to write (default: all).
        description: extra information stored in the manifest (e.g. the command line).
    """
    out = Path(out_dir) / split
    out.mkdir(parents=True, exist_ok=True)
    total = len(dataset) if num_samples is None else min(int(num_samples), len(dataset))
    n_shards = (total + samples_per_shard - 1) // samples_per_shard
    # What a finished shard must have been written with for a re-run to keep it.
    settings = {
        "source": type(dataset).__name__,
        "size": int(getattr(dataset, "size", 0)),
        "seed": getattr(dataset, "seed", None),
        "image_format": image_format,
        "samples_per_shard": int(samples_per_shard),
    }
    shards = []
    for s in range(n_shards):
        name = shard_name(split, s)
        span = [s * samples_per_shard, min(total, (s + 1) * samples_per_shard)]
        record = _finished_shard(out / f"{name}.json", out / f"{name}.tar", settings, span)
        if record is None:
            record = _write_one(dataset, out / name, span, settings, image_format)
        shards.append(record)
    manifest = {
        "format": FORMAT,
        "split": split,
        "size": int(getattr(dataset, "size", 0)),
        "image_format": image_format,
        "num_samples": sum(r["count"] for r in shards),
        "num_skipped": sum(len(r["skipped"]) for r in shards),
        "num_shards": len(shards),
        "shards": [{"name": r["name"], "count": r["count"]} for r in shards],
        "samples": {k: v for r in shards for k, v in r["samples"].items()},
        "skipped": [x for r in shards for x in r["skipped"]],
        "description": description or {},
    }
    atomic_write_bytes(out / "manifest.json", json.dumps(manifest, indent=1).encode("utf-8"))
    return manifest


def _finished_shard(record_path: Path, tar: Path, settings: dict, span: list[int]) -> dict | None:
    """The record of a shard finished earlier with the same settings and range, else ``None``."""
    if not (tar.is_file() and record_path.is_file()):
        return None
    old = json.loads(record_path.read_text())
    if diff := settings_diff(old.get("settings", settings), settings):
        raise DataSourceError(
            f"{record_path}: shard written with other settings {diff}; use another output folder"
        )
    if old.get("range", span) == span:
        log.info("shard %s already written, skipped", tar.stem)
        return old
    log.info("shard %s covers %s, now [%d, %d): rewritten", tar.stem, old["range"], *span)
    return None


def _write_one(dataset, stem: Path, span: list[int], settings: dict, image_format: str) -> dict:
    """Encode source indices ``span`` into ``{stem}.tar``, then write its record ``{stem}.json``."""
    records, sources, skipped = [], {}, []
    for i in range(*span):
        try:
            sample = dataset.load(i)
        except BadSampleError as e:
            skipped.append({"index": i, "reason": str(e)})
            log.warning("skipped sample %d: %s", i, e)
            continue
        records.append(encode_sample(sample, i, image_format))
        sources[sample["key"]] = sample.get("source", "")
    tar = stem.with_name(stem.name + ".tar")
    write_shard(tar, records)
    record = {
        "name": tar.name,
        "count": len(records),
        "range": span,
        "settings": settings,
        "samples": sources,
        "skipped": skipped,
    }
    atomic_write_bytes(stem.with_name(stem.name + ".json"), json.dumps(record).encode("utf-8"))
    log.info("wrote %s (%d samples, %d skipped)", tar, len(records), len(skipped))
    return record
