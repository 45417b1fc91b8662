"""Shards split across ranks and loader workers: each record once, equal steps on every rank."""

import itertools
from collections import Counter

import pytest
from torch.utils.data import DataLoader

from layeringdiff.data.shard_split import rank_length, segments, slot_range, worker_lengths
from layeringdiff.data.shard_writer import write_shards
from layeringdiff.data.shards import ShardDataset
from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.errors import ConfigError


def _records(counts, world, rank, workers, batch, drop_last):
    """Global record numbers each worker of ``rank`` streams, from the segment plan."""
    starts = list(itertools.accumulate([0, *counts]))
    out = []
    for w in range(workers):
        first, n = slot_range(sum(counts), rank, world, w, workers, batch, drop_last)
        out.append([starts[s.shard] + i for s in segments(counts, first, n) for i in range(s.start, s.stop)])
    return out


def _loader_batches(per_worker, batch, drop_last):
    """Batches a DataLoader makes from workers that yield these many records each."""
    return sum((n // batch) if drop_last else -(-n // batch) for n in per_worker)


CASES = list(
    itertools.product(
        [[2, 2, 2], [2], [5, 1, 3, 4], [7], [1, 1, 1, 1, 1]], [1, 2, 3, 8], [1, 2, 3], [1, 2, 4]
    )
)


@pytest.mark.parametrize("drop_last", [True, False])
def test_every_record_once_and_equal_steps_for_any_split(drop_last):
    checked = 0
    for counts, world, workers, batch in CASES:
        total = sum(counts)
        if drop_last and total < world * batch:
            with pytest.raises(ConfigError, match="cannot fill one batch"):
                rank_length(total, world, batch, drop_last)
            continue
        ranks = [_records(counts, world, r, workers, batch, drop_last) for r in range(world)]
        seen = [i for rank in ranks for worker in rank for i in worker]
        steps = {_loader_batches([len(w) for w in rank], batch, drop_last) for rank in ranks}
        assert len(steps) == 1, (counts, world, workers, batch)  # equal steps: collectives match
        if drop_last:
            assert len(seen) == len(set(seen)) == world * batch * (total // (world * batch))
        else:
            # everything, padded by re-reading the first records (as DistributedSampler pads)
            laps, extra = divmod(len(seen), total)
            assert Counter(seen) == {i: laps + (i < extra) for i in range(total)}
            assert len(seen) - total < world
        checked += 1
    assert checked > 80


def test_worker_lengths_deal_whole_batches_round_robin():
    assert worker_lengths(10, 3, 2) == [6, 4]  # batches 0, 2 (6) / 1, 3 (3 + a short 1)
    assert worker_lengths(2, 4, 3) == [2, 0, 0]
    assert sum(worker_lengths(0, 4, 2)) == 0


def _shards(tmp_path, split, n, per_shard):
    src = SyntheticLayers(n, size=16, split=split)
    write_shards(src, tmp_path, split, samples_per_shard=per_shard)
    return sorted(src.key(i) for i in range(n))


def _stream(tmp_path, split, rank, world, workers, batch, drop_last, **kw):
    ds = ShardDataset(tmp_path, split, size=16, **kw)
    ds.configure(rank, world, batch, drop_last)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, drop_last=drop_last)
    batches = [b["key"] for b in loader]
    assert len(batches) == len(loader)  # Lightning's epoch length is len(loader)
    return batches


def test_three_train_shards_two_ranks_two_workers(tmp_path):
    # The reported crash: IndexError in a worker with 3 shards over 2 ranks x 2 workers.
    keys = _shards(tmp_path, "train", 6, 2)
    ranks = [_stream(tmp_path, "train", r, 2, 2, 1, True, shuffle_buffer=4) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 3
    seen = [k for rank in ranks for b in rank for k in b]
    assert sorted(seen) == keys


def test_one_val_shard_serves_two_ranks_and_one_shard_two_workers(tmp_path):
    keys = _shards(tmp_path, "val", 3, 8)
    ranks = [_stream(tmp_path, "val", r, 2, 2, 2, False) for r in range(2)]
    assert [len(r) for r in ranks] == [1, 1]  # 2 samples each: 3 + the first one again
    seen = [k for rank in ranks for b in rank for k in b]
    assert set(seen) == set(keys) and len(seen) == 4
    # one process, one shard, two workers (crashed before): every sample once
    assert sorted(k for b in _stream(tmp_path, "val", 0, 1, 2, 1, False) for k in b) == keys


def test_spawned_workers_use_the_configured_rank(tmp_path):
    # A spawned worker has no process group: the rank must travel with the data set.
    keys = _shards(tmp_path, "val", 4, 1)
    ds = ShardDataset(tmp_path, "val", size=16)
    ds.configure(1, 2, 1, False)
    loader = DataLoader(ds, batch_size=None, num_workers=1, multiprocessing_context="spawn")
    assert [s["key"] for s in loader] == keys[2:]


def test_num_samples_caps_the_epoch_across_ranks(tmp_path):
    _shards(tmp_path, "train", 8, 3)
    ranks = [_stream(tmp_path, "train", r, 2, 2, 2, True, num_samples=5, shuffle_buffer=0) for r in range(2)]
    seen = [k for rank in ranks for b in rank for k in b]
    assert [len(r) for r in ranks] == [1, 1] and len(set(seen)) == 4
    with pytest.raises(ConfigError, match="cannot fill one batch"):
        ShardDataset(tmp_path, "train", size=16, num_samples=3).configure(0, 2, 2, True)
