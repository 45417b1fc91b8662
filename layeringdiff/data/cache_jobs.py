"""Filling a sharded cache (:mod:`layeringdiff.data.cache_shards`) from a data set, shard by shard.

A split's samples are cut into cache shards by a fixed rule, so the shards do not depend on how
many processes write them:

- map-style data (synthetic, folders): shard ``i`` holds samples ``[i * P, (i + 1) * P)``
  (``P = samples_per_shard``);
- prepared webdataset shards (``data=shards``): cache shard ``i`` holds the samples of source
  shard ``i``, in their stored order.

Each process writes the cache shards ``shard.select`` gives it (``--shard I/N``); within a shard the
batches start at its first sample, so the stored values do not depend on the split into processes
either. Finished shards are skipped on a rerun.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, get_worker_info

from layeringdiff.data.cache_shards import build_manifest, cache_shard_writer, finished_shard, write_plan
from layeringdiff.errors import ConfigError, UserError
from layeringdiff.sharding import Shard

log = logging.getLogger(__name__)

#: compute(batch) -> {name: (B, ...) tensor as stored}; may raise UserError for a bad batch.
Compute = Callable[[dict], dict[str, torch.Tensor]]


@dataclass
class Unit:
    """One cache shard to write: its number, what it covers and the data set of its samples."""

    index: int
    covers: dict
    dataset: Dataset


class SourceShard(IterableDataset):
    """The samples of one prepared webdataset shard, in stored order. With loader workers, worker
    ``w`` decodes the records of batches ``w, w + W, ...`` (the order a DataLoader collects them)."""

    def __init__(self, url: str, batch_size: int) -> None:
        self.url, self.batch_size = url, int(batch_size)

    def __iter__(self) -> Iterator[dict]:
        import webdataset as wds

        from layeringdiff.data.shards import decode_sample

        info = get_worker_info()
        wid, workers = (info.id, info.num_workers) if info else (0, 1)
        records = wds.DataPipeline(wds.SimpleShardList([self.url]), wds.tarfile_to_samples())
        for n, record in enumerate(records):
            if (n // self.batch_size) % workers == wid:
                yield decode_sample(record)


def plan_units(dataset: Dataset, samples_per_shard: int, batch_size: int) -> list[Unit]:
    """The cache shards of one split's data set (module docstring)."""
    urls = getattr(dataset, "urls", None)
    if isinstance(dataset, IterableDataset):
        if not urls:
            raise ConfigError(
                f"{type(dataset).__name__}: a streamed data set without shard files cannot be cached"
            )
        return [Unit(i, {"source": Path(u).name}, SourceShard(u, batch_size)) for i, u in enumerate(urls)]
    if samples_per_shard < 1:
        raise ConfigError(f"samples per cache shard must be >= 1, got {samples_per_shard}")
    n = len(dataset)
    spans = [(a, min(n, a + samples_per_shard)) for a in range(0, n, samples_per_shard)]
    return [Unit(i, {"range": [a, b]}, Subset(dataset, range(a, b))) for i, (a, b) in enumerate(spans)]


def fill_unit(
    root: Path, split: str, unit: Unit, compute: Compute, batch_size: int, num_workers: int
) -> dict:
    """Compute and write one cache shard; returns counts (``written``, ``failed``)."""
    iterable = isinstance(unit.dataset, IterableDataset)
    workers = num_workers if not iterable else min(num_workers, 4)
    loader = DataLoader(unit.dataset, batch_size=batch_size, num_workers=workers)
    counts = {"written": 0, "skipped": 0, "failed": 0}
    with cache_shard_writer(root, split, unit.index, unit.covers) as add:
        for batch in loader:
            keys = list(batch["key"])
            try:
                tensors = compute(batch)
            except UserError as e:  # e.g. FBDDInputError for a bad size: counted, the shard goes on
                counts["failed"] += len(keys)
                log.warning("%s: %d samples failed: %s", split, len(keys), str(e).splitlines()[0])
                continue
            for j, key in enumerate(keys):
                add(key, {name: t[j] for name, t in tensors.items()})
            counts["written"] += len(keys)
    return counts


def fill_cache(
    root: str | Path,
    datasets: dict[str, Dataset],
    compute: Compute,
    shard: Shard,
    settings: dict,
    samples_per_shard: int = 500,
    batch_size: int = 8,
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, int]]:
    """Write this process's cache shards of every split, then (re)build the manifest.

    Returns:
        ``{split: {"written", "skipped", "failed"}}`` over this process's shards (``skipped``:
        samples of shards finished earlier).
    """
    from tqdm import tqdm

    root = Path(root)
    totals = {}
    for split, dataset in datasets.items():
        units = plan_units(dataset, samples_per_shard, batch_size)
        write_plan(root, split, len(units))
        counts = {"written": 0, "skipped": 0, "failed": 0}
        for unit in tqdm(shard.select(units), desc=split, unit="shard", disable=not progress):
            done = finished_shard(root, split, unit.index, unit.covers)
            if done is not None:
                counts["skipped"] += int(done["count"])
                continue
            for k, v in fill_unit(root, split, unit, compute, batch_size, num_workers).items():
                counts[k] += v
        totals[split] = counts
    manifest = build_manifest(root, settings)
    if manifest["missing"]:
        log.info("%s: %d shard(s) still to write by the other processes", root, len(manifest["missing"]))
    return totals


def merge_cache(root: str | Path, info_name: str = "cache_info.json") -> dict:
    """Rebuild ``manifest.json`` from the finished shards (after sharded runs, or to check a cache).

    Returns:
        ``{"samples": n, "shards": n, "missing": [shard names]}``.
    """
    import json

    root = Path(root)
    info = root / info_name
    if not info.is_file():
        raise ConfigError(f"{root}: no {info_name}; not a cache folder (or nothing written yet)")
    manifest = build_manifest(root, json.loads(info.read_text()))
    return {
        "samples": manifest["num_samples"],
        "shards": len(manifest["shards"]),
        "missing": manifest["missing"],
    }
