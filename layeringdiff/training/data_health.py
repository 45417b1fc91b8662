"""Stop a training whose data yields nothing, and say how many samples each epoch skipped.

With ``max_epochs: -1`` a data set whose every record is unreadable would run empty epochs for
ever (each one logging its skips). :class:`EpochDataCheck` ends the run with one line after the
first epoch that yields no batch, and logs each epoch's skipped samples (every loader worker's,
counted by :class:`~layeringdiff.data.skips.SkipCounter`); the total goes into the run summary.
"""

from __future__ import annotations

import logging

import lightning.pytorch as pl

from layeringdiff.data.skips import skipped_count
from layeringdiff.errors import UserError

log = logging.getLogger(__name__)


class EmptyEpochError(UserError, RuntimeError):
    """A training epoch produced no batch (every sample skipped, or fewer samples than a batch)."""


def train_skips(trainer: pl.Trainer) -> int:
    """Samples skipped so far by the training data (0 when the data counts none)."""
    dm = trainer.datamodule
    datasets = getattr(dm, "datasets", None)
    if isinstance(datasets, dict) and "train" in datasets:
        return skipped_count(datasets["train"])
    loader = getattr(trainer, "train_dataloader", None)
    return skipped_count(getattr(loader, "dataset", None))


class EpochDataCheck(pl.Callback):
    """Counts each training epoch's batches and skipped samples; an epoch without a batch stops the run."""

    def __init__(self) -> None:
        self.batches = 0
        self.skipped_total = 0  # at the end of the last epoch (loader workers read ahead of the hooks)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.skipped_total = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = train_skips(trainer)
        skipped, self.skipped_total = total - self.skipped_total, total
        epoch = trainer.current_epoch
        if skipped:
            log.warning(
                "epoch %d: %d training sample(s) skipped as unreadable (%d in all)", epoch, skipped, total
            )
        # Only an epoch emptied by unreadable samples is a data fault: the loop can also open an
        # epoch with no batch left to run (e.g. the step budget or a resume position ends it).
        if self.batches == 0 and skipped and not trainer.sanity_checking:
            dm = trainer.datamodule
            size = getattr(dm, "batch_size", None)
            raise EmptyEpochError(
                f"training epoch {epoch} yielded no batch: {skipped} sample(s) skipped as unreadable "
                f"this epoch{f', batch_size={size}' if size else ''}; check the data (the warnings above name "
                "the bad files)"
            )
