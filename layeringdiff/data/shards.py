"""WebDataset shards of ready samples: format, encoding and the reader (the writer is in
:mod:`layeringdiff.data.shard_writer`).

Layout: ``{root}/{split}/{split}-{i:06d}.tar`` plus, per shard, ``{split}-{i:06d}.json`` (written
after the tar is in place: its presence marks the shard finished) and ``{root}/{split}/manifest.json``.
One tar member group per sample (``__key__`` is a running number, the sample key is in the JSON):

- ``foreground.png`` / ``background.png``: 8-bit RGB (or ``.npy`` raw uint8 with
  ``image_format="npy"``: ~2.6x the PNG size, fast to decode); ``alpha.png``: 8-bit gray;
  ``trimap.png``: 0 / 128 / 255; ``json``: key, fg_caption, source.
- or, with ``image_format="tiff"``, one ``layers.tiff`` (and the ``json``): an 8-bit gray TIFF of
  8 x size rows, the planes F (R, G, B), B (R, G, B), alpha and trimap stacked top to bottom,
  lossless zstd with the horizontal predictor: one decode per sample, planes already in the
  tensors' channel-first order, a little smaller than the PNG members.

The composite is not stored: it is recomputed in float from the 8-bit layers exactly as the
on-the-fly recipe does, so a sample read back equals the sample written, bit for bit.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from layeringdiff.data.recipe import make_sample, trimap_to_uint8
from layeringdiff.data.shard_split import rank_length, segments, slot_range
from layeringdiff.data.skips import SkipCounter
from layeringdiff.data.sources import DataSourceError
from layeringdiff.data.splits import stable_seed
from layeringdiff.errors import ConfigError
from layeringdiff.images import ImageReadError, tensor_to_uint8

log = logging.getLogger(__name__)
FORMAT = "layeringdiff-shards/1"
# Codecs of the foreground / background members (alpha and trimap are always PNG).
IMAGE_FORMATS = ("png", "npy", "tiff")
TIFF_PREDICTOR = 317  # TIFF tag: 2 = horizontal differencing before compression
LAYER_PLANES = 8  # layers.tiff: F (R, G, B), B (R, G, B), alpha, trimap


# ----------------------------------------------------------------------------- encoding


# The "up" row filter decodes ~30% faster than libpng's adaptive default at the same file size.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


def _png(arr: np.ndarray) -> bytes:
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, PNG_PARAMS)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def _tiff(arr: np.ndarray) -> bytes:
    """Lossless TIFF, zstd with the horizontal-difference predictor (Pillow's libtiff): a little
    smaller than the PNG layers and ~2.5x faster to decode."""
    from PIL import Image

    buf = io.BytesIO()
    try:
        Image.fromarray(np.ascontiguousarray(arr)).save(
            buf, format="TIFF", compression="zstd", tiffinfo={TIFF_PREDICTOR: 2}
        )
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(
            f"image_format 'tiff' needs Pillow built with libtiff and zstd ({e}); use 'png' or 'npy'"
        ) from None
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def encode_sample(sample: dict, index: int, image_format: str = "png") -> dict:
    """Sample dict -> webdataset record (bytes per member)."""
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    meta = {
        "key": sample["key"],
        "fg_caption": sample.get("fg_caption", ""),
        "source": sample.get("source", ""),
    }
    if image_format == "tiff":
        return {
            "__key__": f"{index:09d}",
            "layers.tiff": _tiff(_planes(sample)),
            "json": json.dumps(meta).encode(),
        }
    enc = {"png": _png, "npy": _npy}[image_format]
    return {
        "__key__": f"{index:09d}",
        f"foreground.{image_format}": enc(tensor_to_uint8(sample["foreground"])),
        f"background.{image_format}": enc(tensor_to_uint8(sample["background"])),
        "alpha.png": _png(tensor_to_uint8(sample["alpha"])[:, :, 0]),
        "trimap.png": _png(trimap_to_uint8(sample["trimap"])),
        "json": json.dumps(meta).encode("utf-8"),
    }


def _planes(sample: dict) -> np.ndarray:
    """The uint8 planes F (R, G, B), B (R, G, B), alpha, trimap stacked into one (8 H, W) image."""
    planes = [tensor_to_uint8(sample[k]).transpose(2, 0, 1) for k in ("foreground", "background", "alpha")]
    planes.append(trimap_to_uint8(sample["trimap"])[None])
    stacked = np.concatenate(planes, axis=0)
    return stacked.reshape(-1, stacked.shape[-1])


def _from_planes(name: str, arr: np.ndarray) -> tuple[np.ndarray, ...]:
    """(F, alpha, B, trimap) of a ``layers.tiff``: F and B as (H, W, 3) views of their planes (the
    tensor conversion then reads them contiguously), alpha and trimap (H, W)."""
    if arr.ndim != 2 or arr.shape[0] % LAYER_PLANES:
        raise ImageReadError(f"{name}: expected {LAYER_PLANES} stacked planes, got shape {arr.shape}")
    planes = arr.reshape(LAYER_PLANES, -1, arr.shape[1])
    return planes[0:3].transpose(1, 2, 0), planes[6], planes[3:6].transpose(1, 2, 0), planes[7]


def _decode_image(name: str, data: bytes) -> np.ndarray:
    if name.endswith(".npy"):
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    else:
        # colour layers straight to RGB (no BGR pass, no flipped copy); alpha / trimap as stored
        colour = name.startswith(("foreground.", "background."))
        flags = cv2.IMREAD_COLOR_RGB if colour else cv2.IMREAD_UNCHANGED
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if arr is None:
            raise ImageReadError(f"{name}: not a readable PNG")
    if arr.dtype != np.uint8:
        raise ImageReadError(f"{name}: expected 8-bit data, got {arr.dtype}")
    return arr


def _decode_tiff(name: str, data: bytes) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode != "L":
                raise ValueError(f"mode {img.mode}")
            return np.asarray(img)
    except Exception as e:  # PIL raises many types for corrupt data
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{name}: not a readable TIFF layer ({reason})") from None


def decode_sample(record: dict) -> dict:
    """Webdataset record (raw bytes) -> sample dict of the data contract."""
    members = {k: v for k, v in record.items() if not k.startswith("__")}
    meta = json.loads(members["json"])
    if "layers.tiff" in members:
        f, a, b, t = _from_planes("layers.tiff", _decode_tiff("layers.tiff", members["layers.tiff"]))
        return make_sample(f, a, b, meta["key"], meta.get("fg_caption", ""), trimap=t)

    def image(stem: str) -> np.ndarray:
        for ext in ("png", "npy"):
            if f"{stem}.{ext}" in members:
                return _decode_image(f"{stem}.{ext}", members[f"{stem}.{ext}"])
        raise KeyError(f"sample {meta.get('key')!r} has no {stem} member")

    return make_sample(
        image("foreground"),
        image("alpha"),
        image("background"),
        meta["key"],
        meta.get("fg_caption", ""),
        trimap=image("trimap"),
    )


# ----------------------------------------------------------------------------- reading


def read_manifest(root: str | os.PathLike, split: str) -> dict:
    path = Path(root) / split / "manifest.json"
    if not path.is_file():
        raise DataSourceError(f"{path}: no shard manifest (write shards with data/make_shards.py)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataSourceError(f"{path}: unreadable manifest ({e})") from None
    if manifest.get("format") != FORMAT:
        raise DataSourceError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


class ShardDataset(IterableDataset):
    """Stream samples from the shards of one split, with a shuffle buffer for training.

    Each epoch reads the first ``num_samples`` records of the split's shards (in a per-epoch shard
    order when shuffling) and divides them among processes and loader workers by
    :mod:`layeringdiff.data.shard_split`: any number of shards, ranks and workers; each record at
    most once per epoch; the same number of batches on every rank. The DataModule tells the data
    set its rank, world size and batching with :meth:`configure` (nothing is read from the
    environment, so spawned loader workers split the same way); unconfigured, one process streams
    every record. Records that fail to decode are skipped and counted in ``skipped`` (a rank then
    takes fewer steps: keep shards readable for multi-process training).

    Args:
        root: shard root (containing ``{split}/manifest.json``).
        split: "train", "val" or "test".
        num_samples: samples per epoch (None = all in the manifest).
        size: expected image size; a mismatch with the manifest is refused.
        seed: seed of the shard order and the shuffle buffer (varied by epoch).
        shuffle_buffer: buffer size; 0 = stream in order. Defaults to 1000 for train, 0 otherwise.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        num_samples: int | None = None,
        size: int = 512,
        seed: int = 0,
        shuffle_buffer: int | None = None,
    ) -> None:
        self.root, self.split, self.seed = Path(root), split, int(seed)
        self.manifest = read_manifest(root, split)
        if int(self.manifest["size"]) != int(size):
            raise DataSourceError(
                f"{self.root / split}: shards hold {self.manifest['size']}px samples but size={size} was asked"
            )
        listed = [s for s in self.manifest["shards"] if s["count"] > 0]
        self.urls = [str(self.root / split / s["name"]) for s in listed]
        self.counts = [int(s["count"]) for s in listed]
        missing = [u for u in self.urls if not Path(u).is_file()]
        if missing or not self.urls:
            raise DataSourceError(
                f"{self.root / split}: shard files missing ({missing[:1] or 'none listed'})"
            )
        self.available = int(self.manifest["num_samples"])
        self.num_samples = self.available if num_samples is None else min(int(num_samples), self.available)
        self.shuffle_buffer = (
            (1000 if split == "train" else 0) if shuffle_buffer is None else int(shuffle_buffer)
        )
        self.size, self.epoch = int(size), 0
        self._resume = (0, 0, 1)  # (epoch, batches to skip, batch size)
        self.rank, self.world, self.batch_size, self.drop_last = 0, 1, 1, False
        self.skipped: dict[str, str] = {}
        self.skip_counter = SkipCounter("shard record")

    def __len__(self) -> int:
        """Records this rank streams per epoch (all of them for one unconfigured process)."""
        return rank_length(self.num_samples, self.world, self.batch_size, self.drop_last)

    def configure(self, rank: int = 0, world: int = 1, batch_size: int = 1, drop_last: bool = False) -> None:
        """This process's place among ``world`` processes and its loader's batching (set before the
        loader is built; loader workers get a copy)."""
        if not 0 <= int(rank) < int(world) or int(batch_size) < 1:
            raise ConfigError(f"rank {rank} of world size {world}, batch size {batch_size}: out of range")
        self.rank, self.world, self.batch_size = int(rank), int(world), int(batch_size)
        self.drop_last = bool(drop_last)
        len(self)  # too few samples for one batch per rank: the one-line error now, not in a worker

    def set_epoch(self, epoch: int, resume_batches: int = 0, batch_size: int = 1) -> None:
        """Start the next pass at ``epoch``; skip the ``resume_batches`` batches of ``batch_size``
        that an interrupted run already trained on in it (loader workers deal batches round-robin)."""
        self.epoch = int(epoch)
        self._resume = (self.epoch, int(resume_batches), int(batch_size))

    def _my_segments(self, epoch: int) -> list[tuple[str, int, int]]:
        """``(url, first record, stop)`` pieces of this rank and loader worker in ``epoch``."""
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        order = list(range(len(self.urls)))
        if self.shuffle_buffer:  # the same order on every rank and worker: it is split below
            np.random.default_rng([self.seed, epoch]).shuffle(order)
        counts, left = [], self.num_samples
        for i in order:  # the epoch covers the first num_samples records in this order
            counts.append(min(self.counts[i], left))
            left -= counts[-1]
        first, n = slot_range(
            self.num_samples, self.rank, self.world, wid, nworkers, self.batch_size, self.drop_last
        )
        return [(self.urls[order[g.shard]], g.start, g.stop) for g in segments(counts, first, n)]

    def _records(self, pieces: list[tuple[str, int, int]]) -> Iterator[dict]:
        import webdataset as wds

        def note(exn: Exception) -> bool:
            reason = str(exn).splitlines()[0] if str(exn) else type(exn).__name__
            self.skipped[f"{len(self.skipped)}"] = reason
            self.skip_counter.note(f"(broken tar entry: {reason})")
            return True

        for url, start, stop in pieces:
            records = wds.DataPipeline(wds.SimpleShardList([url]), wds.tarfile_to_samples(handler=note))
            for i, record in enumerate(records):
                if i >= stop:
                    break
                if i >= start:
                    yield record

    def __iter__(self) -> Iterator[dict]:
        import random

        # Advance the epoch when a pass starts: the trainer stops after len(loader) batches without
        # exhausting this generator, so code after the loop would never run.
        epoch, self.epoch = self.epoch, self.epoch + 1
        pieces = self._my_segments(epoch)
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        resume_epoch, done, batch_size = self._resume
        self._resume = (0, 0, 1)
        # batches j < done came from worker j % nworkers: skip this worker's share of them, undecoded
        skip = len(range(wid, done, nworkers)) * batch_size if resume_epoch == epoch else 0
        stream = self._records(pieces)
        if self.shuffle_buffer:
            rng = random.Random(stable_seed("shuffle", self.seed, epoch, *(map(str, pieces))))
            stream = _shuffle(stream, self.shuffle_buffer, rng)
        for record in stream:
            if skip:
                skip -= 1
                continue
            try:
                sample = decode_sample(record)
            except (ImageReadError, KeyError, ValueError) as e:
                self.skipped[record.get("__url__", "?") + ":" + record.get("__key__", "?")] = str(e)
                self.skip_counter.note(f"{record.get('__key__')}: {e}")
                continue
            yield sample


def _shuffle(stream: Iterator[dict], bufsize: int, rng) -> Iterator[dict]:
    """Reservoir-style shuffle buffer: fill, then emit a random element for each new one."""
    buf: list[dict] = []
    for item in stream:
        if len(buf) < bufsize:
            buf.append(item)
            continue
        j = rng.randrange(bufsize)
        buf[j], item = item, buf[j]
        yield item
    rng.shuffle(buf)
    yield from buf
