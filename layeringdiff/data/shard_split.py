"""Which records of a sharded split each rank and loader worker streams in one epoch.

The epoch's shards (in the epoch's order, the same on every rank) are read as one sequence of
``total`` records. Each rank takes a contiguous run of :func:`rank_length` records, and its loader
workers split that run into whole batches, dealt round-robin the way a ``DataLoader`` collects
them (batch ``j`` of a rank comes from worker ``j % workers``). A slot opens only the shards its run
overlaps, so together the slots read each shard about once.

Why not split whole shards across ranks (``urls[rank::world]``, webdataset's ``split_by_node`` /
``split_by_worker``)? With shards that do not divide evenly the ranks then hold different sample
counts: an explicit epoch length (``with_epoch``) equalises the steps only by streaming some
samples twice on one rank and never reaching others on another. Splitting runs of records gives
every rank the same step count and each record at most once per epoch, for any number of shards,
ranks and workers (a slot with nothing to read yields nothing instead of crashing).

Epoch length per rank (the same on every rank, so every collective call matches):

- ``drop_last=True`` (training): ``total // (world * batch_size)`` full batches; the remaining
  ``total mod (world * batch_size)`` records are left out of this epoch. The shard order and the
  shuffle change each epoch, so a different remainder is left out each time.
- ``drop_last=False`` (validation, test): ``ceil(total / world)`` records; the last
  ``world * ceil(total / world) - total`` (fewer than ``world``) are the epoch's first records read
  again, as PyTorch's ``DistributedSampler`` pads. One validation shard serves any number of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

from layeringdiff.errors import ConfigError


@dataclass(frozen=True)
class Segment:
    """Records ``start`` (inclusive) to ``stop`` (exclusive) of shard number ``shard``."""

    shard: int
    start: int
    stop: int


def rank_length(total: int, world: int, batch_size: int, drop_last: bool) -> int:
    """Records each rank streams in one epoch (see the module docstring).

    Raises:
        ConfigError: ``drop_last`` and fewer records than one batch per rank.
    """
    if drop_last:
        batches = total // (world * batch_size)
        if batches == 0 and total > 0:
            raise ConfigError(
                f"{total} training samples cannot fill one batch of {batch_size} on each of {world} "
                f"processes: lower data.batch_size or add samples"
            )
        return batches * batch_size
    return -(-total // world)


def worker_lengths(length: int, batch_size: int, workers: int) -> list[int]:
    """Records of each loader worker: whole batches dealt round-robin; the last batch may be short."""
    batches = -(-length // batch_size)
    counts = [len(range(w, batches, workers)) * batch_size for w in range(workers)]
    if batches:
        counts[(batches - 1) % workers] -= batches * batch_size - length
    return counts


def slot_range(
    total: int,
    rank: int,
    world: int,
    worker: int,
    workers: int,
    batch_size: int,
    drop_last: bool,
) -> tuple[int, int]:
    """``(first record, count)`` of one slot in the epoch's record sequence (may pass ``total``:
    positions wrap around, see the padding rule)."""
    if not (0 <= rank < world and 0 <= worker < workers):
        raise ValueError(f"rank {rank} of {world} / worker {worker} of {workers} is out of range")
    length = rank_length(total, world, batch_size, drop_last)
    counts = worker_lengths(length, batch_size, workers)
    return rank * length + sum(counts[:worker]), counts[worker]


def segments(counts: list[int], first: int, count: int) -> list[Segment]:
    """The shard pieces that hold records ``first .. first + count - 1`` of the sequence of shards
    with ``counts`` records each (positions are taken modulo the sum: padding wraps to the start)."""
    total = sum(counts)
    out: list[Segment] = []
    if count <= 0 or total == 0:
        return out
    ends, acc = [], 0
    for c in counts:
        acc += c
        ends.append(acc)
    pos, left = first % total, count
    while left > 0:
        shard = next(i for i, end in enumerate(ends) if end > pos)
        start = pos - (ends[shard] - counts[shard])
        take = min(left, counts[shard] - start)
        if out and out[-1].shard == shard and out[-1].stop == start:
            out[-1] = Segment(shard, out[-1].start, start + take)
        else:
            out.append(Segment(shard, start, start + take))
        pos, left = (pos + take) % total, left - take
    return out
