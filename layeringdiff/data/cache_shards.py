"""Per-sample caches (FBDD latents, FBDD outputs) stored as tar shards, and their reader.

Layout of a cache folder ``{root}``:

- ``{split}/{split}-{i:06d}.tar``: plain (webdataset-style) tar files; each sample is one member
  ``{n:09d}.safetensors`` holding its tensors, with the sample key in the safetensors metadata
  (``key``). Members are written with fixed owner, mode and time, so a shard is a pure function
  of its samples (N sharded runs write the bytes one run would).
- ``{split}/{split}-{i:06d}.json``: written after the tar is in place; its presence marks the shard
  finished (a rerun skips it). Holds the shard's samples as ``[key, offset, size]`` (where each
  member's bytes lie in the tar) and what the shard covers.
- ``{split}/plan.json``: the shards the split needs (so completeness can be judged).
- ``manifest.json``: every finished shard of every split and where each key lies; rebuilt by every
  run that finishes shards and by ``--merge``. ``missing`` lists shards still to write.
- ``cache_info.json``: the settings the cache was made with (another setting is refused).

Reading: :mod:`layeringdiff.data.cache_reader` (``CacheReader``, from paths and URLs).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from layeringdiff.errors import UserError
from layeringdiff.files import atomic_file, atomic_write_bytes

log = logging.getLogger(__name__)
FORMAT = "layeringdiff-cache/1"
MANIFEST = "manifest.json"
PLAN = "plan.json"


class MissingSidecarError(UserError, FileNotFoundError):
    """A configured cache has no entry for a sample (the cache is incomplete), or no cache is there."""


class CacheFormatError(UserError, ValueError):
    """A cache file is not what this version writes (format, damaged shard)."""


def shard_stem(split: str, index: int) -> str:
    return f"{split}/{split}-{index:06d}"


# ----------------------------------------------------------------------------- writing


def encode_entry(key: str, tensors: dict[str, torch.Tensor]) -> bytes:
    """One sample's tensors as safetensors bytes, the key in the metadata."""
    return save_tensors({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata={"key": key})


def decode_entry(data: bytes) -> dict[str, torch.Tensor]:
    """safetensors bytes -> tensors; uint8 images become float in [0, 1], floats float32."""
    return {
        k: v.float().div_(255.0) if v.dtype == torch.uint8 else v.float()
        for k, v in load_tensors(data).items()
    }


@contextmanager
def cache_shard_writer(root: str | os.PathLike, split: str, index: int, covers: dict) -> Iterator:
    """Yield ``add(key, tensors)``; on leaving the block ``{split}-{index}.tar`` is renamed into place,
    then its record ``.json`` written (an error inside the block leaves neither).

    Args:
        covers: what the shard stands for (source range or source shard), kept in the record so a
            rerun on changed data redoes it.
    """
    stem = Path(root) / shard_stem(split, index)
    stem.parent.mkdir(parents=True, exist_ok=True)
    samples: list[list] = []
    with atomic_file(stem.with_suffix(".tar")) as tmp, open(tmp, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:

            def add(key: str, tensors: dict[str, torch.Tensor]) -> None:
                data = encode_entry(key, tensors)
                info = tarfile.TarInfo(f"{len(samples):09d}.safetensors")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
                # the data ends the archive so far, padded to whole 512-byte blocks
                padded = -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                samples.append([key, tar.offset - padded, len(data)])

            yield add
    record = {
        "name": f"{shard_stem(split, index)}.tar",
        "count": len(samples),
        "covers": covers,
        "samples": samples,
    }
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(record).encode("utf-8"))


def finished_shard(root: str | os.PathLike, split: str, index: int, covers: dict) -> dict | None:
    """The record of a finished shard covering ``covers``, else ``None`` (missing, or other data)."""
    stem = Path(root) / shard_stem(split, index)
    if not (stem.with_suffix(".tar").is_file() and stem.with_suffix(".json").is_file()):
        return None
    try:
        record = json.loads(stem.with_suffix(".json").read_text())
    except json.JSONDecodeError:
        return None
    if record.get("covers") != covers:
        log.info("%s covers %s, now %s: rewritten", stem.name, record.get("covers"), covers)
        return None
    return record


def write_plan(root: str | os.PathLike, split: str, num_shards: int) -> None:
    path = Path(root) / split / PLAN
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"split": split, "num_shards": int(num_shards)}).encode("utf-8")
    if not path.is_file() or path.read_bytes() != data:
        atomic_write_bytes(path, data)


def _scan(root: Path) -> tuple[list[dict], list[str]]:
    """(finished shard records of every planned split, names of the planned shards not finished)."""
    shards, missing = [], []
    for plan_path in sorted(root.glob(f"*/{PLAN}")):
        plan = json.loads(plan_path.read_text())
        for i in range(int(plan["num_shards"])):
            stem = root / shard_stem(plan["split"], i)
            if stem.with_suffix(".tar").is_file() and stem.with_suffix(".json").is_file():
                shards.append(json.loads(stem.with_suffix(".json").read_text()))
            else:
                missing.append(f"{shard_stem(plan['split'], i)}.tar")
    return shards, missing


def build_manifest(root: str | os.PathLike, settings: dict | None = None) -> dict:
    """Write ``manifest.json`` from the finished shards; rescan until no shard finished meanwhile
    (concurrent sharded runs: the last one to finish leaves the complete manifest)."""
    root = Path(root)
    while True:
        shards, missing = _scan(root)
        samples: dict[str, list] = {}
        for s, rec in enumerate(shards):
            for key, offset, size in rec["samples"]:
                if key in samples:
                    raise CacheFormatError(
                        f"{root}: sample {key!r} is in {shards[samples[key][0]]['name']} and {rec['name']}"
                    )
                samples[key] = [s, offset, size]
        manifest = {
            "format": FORMAT,
            "settings": settings or {},
            "num_samples": len(samples),
            "shards": [{"name": r["name"], "count": r["count"]} for r in shards],
            "missing": missing,
            "samples": samples,
        }
        atomic_write_bytes(root / MANIFEST, json.dumps(manifest).encode("utf-8"))
        if _scan(root)[1] == missing:
            return manifest
