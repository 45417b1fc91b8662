"""``LayerDataModule``: train / val / test loaders of composite samples from any source.

The source is injected as a partial dataset constructor (Hydra ``_partial_: true``) that the
module calls once per split as ``dataset(split=..., num_samples=..., size=..., seed=...)``:
``SyntheticLayers`` (``data=synthetic``), ``FolderComposites`` (``data=folders``) or
``ShardDataset`` (``data=shards``). Batches are default-collated sample dicts (docs/architecture.md, training sample keys).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import cv2
import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler

from layeringdiff.data.cache_reader import CacheReader, MissingSidecarError, SidecarFolder, open_cache
from layeringdiff.data.skips import SkipCounter
from layeringdiff.data.splits import stable_seed
from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.errors import ConfigError

log = logging.getLogger(__name__)


__all__ = ["LayerDataModule", "MissingSidecarError", "merge_sidecars"]


def merge_sidecars(sample: dict, caches: Sequence[str | CacheReader | SidecarFolder]) -> dict:
    """Add the cached tensors of ``sample["key"]`` from every cache to ``sample`` (in place).

    A cache is a reader or a folder / URL for :func:`~layeringdiff.data.cache_reader.open_cache`
    (sharded caches, or the older ``{dir}/{key}.safetensors`` folders).

    Raises:
        MissingSidecarError: one line naming the cache and the sample.
        ValueError: a cached tensor would overwrite a key the sample already has.
    """
    for cache in caches:
        reader = open_cache(cache) if isinstance(cache, str) else cache
        for name, value in reader.get(sample["key"]).items():
            if name in sample:
                raise ValueError(f"{reader.root}: cached tensor {name!r} clashes with a sample key")
            sample[name] = value
    return sample


class _Sidecars:
    """What both sidecar wrappers hold: the wrapped data set, the folders, the missing-file policy."""

    def __init__(self, dataset, dirs: Sequence[str], missing: str = "error") -> None:
        if missing not in ("error", "skip"):
            raise ConfigError(f"missing_sidecar must be 'error' or 'skip', got {missing!r}")
        self.dataset, self.dirs, self.missing = dataset, list(dirs), missing
        self.caches = [open_cache(d) for d in self.dirs]  # readers: picklable, files opened per worker
        self.skipped: dict[str, str] = {}
        self.skip_counter = SkipCounter("sample without sidecars")

    def __len__(self) -> int:
        return len(self.dataset)


class SidecarDataset(_Sidecars, Dataset):
    """Map-style wrapper merging sidecars into each sample.

    Args:
        dataset: the wrapped map-style data set.
        dirs: sidecar folders.
        missing: "error" (default: raise ``MissingSidecarError``) or "skip" (use the next sample
            that has all its sidecars; the skipped keys are counted in ``skipped``).
    """

    def __getitem__(self, index: int) -> dict:
        n = len(self.dataset)
        for attempt in range(n):
            sample = self.dataset[(index + attempt) % n]
            try:
                return merge_sidecars(sample, self.caches)
            except MissingSidecarError as e:
                if self.missing == "error":
                    raise
                self.skipped[sample["key"]] = str(e)
                self.skip_counter.note(e)
        raise MissingSidecarError(f"no sample of {n} has all sidecars in {self.dirs}")


class SidecarIterable(_Sidecars, IterableDataset):
    """Streaming counterpart of :class:`SidecarDataset` (``missing="skip"`` drops the sample)."""

    def set_epoch(self, epoch: int, **resume) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch, **resume)

    def configure(self, *args, **kwargs) -> None:
        if hasattr(self.dataset, "configure"):
            self.dataset.configure(*args, **kwargs)

    def __iter__(self) -> Iterator[dict]:
        for sample in self.dataset:
            try:
                yield merge_sidecars(sample, self.caches)
            except MissingSidecarError as e:
                if self.missing == "error":
                    raise
                self.skipped[sample["key"]] = str(e)
                self.skip_counter.note(e)


class EpochShuffleSampler(RandomSampler):
    """A random order that is a function of ``(seed, epoch)`` only.

    Lightning calls ``set_epoch`` with its restored epoch counter at every epoch start, so a run
    resumed from a checkpoint sees the same order in each epoch as the uninterrupted run (a loader
    generator seeded once would restart at the first epoch's order). Outside a trainer the epoch
    advances after each full pass. Under DDP Lightning replaces it (being a ``RandomSampler``)
    by its epoch-seeded ``DistributedSampler``.

    Args:
        data_source: the map-style data set.
        seed: data seed.
        resume: ``(epoch, samples)``: in that epoch, leave out the first ``samples`` of the order
            (those the interrupted run had already trained on).
    """

    def __init__(self, data_source: Dataset, seed: int = 0, resume: tuple[int, int] = (0, 0)) -> None:
        super().__init__(data_source)
        self.seed, self.epoch = int(seed), 0
        self.resume = (int(resume[0]), int(resume[1]))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(stable_seed("shuffle", self.seed, self.epoch))
        start = self.resume[1] if self.resume[0] == self.epoch else 0
        self.resume = (0, 0)
        yield from torch.randperm(len(self.data_source), generator=g)[start:].tolist()
        self.epoch += 1


def whole_number(name: str, value, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; a fraction, NaN, text or a smaller number is a one-line error."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _worker_init(_: int) -> None:
    # Each loader worker is one core's worth of decoding; nested thread pools only fight.
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class LayerDataModule(pl.LightningDataModule):
    """Loaders of composite samples (docs/architecture.md contract) for training and evaluation.

    Args:
        dataset: partial constructor called as ``dataset(split=, num_samples=, size=, seed=)``;
            defaults to :class:`SyntheticLayers`.
        size: crop size (512 in the paper; 64 in smoke runs).
        batch_size: samples per batch (per device).
        num_workers: loader worker processes.
        pin_memory: pin host memory for faster device copies.
        seed: data seed (pairings, trimaps, shuffling); independent of the training seed so that
            caches keyed by sample key stay valid.
        sidecars: folders of per-sample safetensors merged into each sample.
        missing_sidecar: "error" (default) or "skip" (skipped and counted).
        num_train: train samples (None = everything the source has).
        num_val: validation samples (None = everything).
        num_test: test samples (None = everything).
        drop_last: drop the last incomplete training batch.
    """

    def __init__(
        self,
        dataset: Callable[..., Dataset] | None = None,
        size: int = 512,
        batch_size: int = 4,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        sidecars: Sequence[str] = (),
        missing_sidecar: str = "error",
        num_train: int | None = 1000,
        num_val: int | None = 16,
        num_test: int | None = 16,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        self.dataset_fn = dataset or SyntheticLayers
        self.size, self.batch_size = (
            whole_number("data.size", size, 1),
            whole_number("data.batch_size", batch_size, 1),
        )
        self.num_workers = whole_number("data.num_workers", num_workers, 0)
        self.pin_memory, self.seed, self.drop_last = bool(pin_memory), int(seed), bool(drop_last)
        self.sidecars, self.missing_sidecar = [str(d) for d in (sidecars or [])], missing_sidecar
        self.num_samples = {"train": num_train, "val": num_val, "test": num_test}
        self.datasets: dict[str, Dataset] = {}

    def build(self, split: str) -> Dataset:
        """The (sidecar-wrapped) data set of one split; built once and cached."""
        if split not in self.datasets:
            ds = self.dataset_fn(
                split=split, num_samples=self.num_samples[split], size=self.size, seed=self.seed
            )
            if self.sidecars:
                wrap = SidecarIterable if isinstance(ds, IterableDataset) else SidecarDataset
                ds = wrap(ds, self.sidecars, self.missing_sidecar)
            self.datasets[split] = ds
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in splits.get(stage, ("train", "val", "test")):
            self.build(split)

    def resume_position(self, num_samples: int | None) -> tuple[int, int]:
        """``(epoch, batches already trained in it)`` where the attached trainer (re)starts.

        Lightning restores its loop counters before asking for the loaders; a mid-epoch checkpoint
        then continues the epoch with the batches the interrupted run had not reached yet.
        """
        if self.trainer is None:
            return 0, 0
        loop = self.trainer.fit_loop
        epoch = loop.epoch_progress.current.processed  # what Lightning passes to set_epoch
        done = loop.epoch_loop.batch_progress.current.ready if loop.epoch_loop.restarting else 0
        if num_samples is None:
            return epoch, done
        per_epoch = num_samples // self.batch_size if self.drop_last else -(-num_samples // self.batch_size)
        return (epoch + 1, 0) if done >= per_epoch else (epoch, done)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.build(split)
        iterable = isinstance(ds, IterableDataset)
        sampler = None
        if iterable and hasattr(ds, "configure"):
            # Streams split themselves across processes and workers: tell them this process's rank
            # here (a spawned loader worker has no process group to ask). Map-style sets get
            # Lightning's DistributedSampler instead.
            rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
            ds.configure(rank, world, self.batch_size, drop_last=train and self.drop_last)
        if train:
            # The order is a function of (seed, epoch); a resumed run starts where the trainer stopped.
            epoch, done = self.resume_position(len(ds) if hasattr(ds, "__len__") else None)
            if not iterable:
                sampler = EpochShuffleSampler(ds, self.seed, resume=(epoch, done * self.batch_size))
            elif hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch, resume_batches=done, batch_size=self.batch_size)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=train and self.drop_last,
            worker_init_fn=_worker_init,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
