"""Webdataset shards: bit-exact round trip, resume, atomicity, manifest, reader robustness."""

import json

import pytest
import torch

from layeringdiff.data.shard_writer import write_shard, write_shards
from layeringdiff.data.shards import ShardDataset
from layeringdiff.data.sources import BadSampleError, DataSourceError
from layeringdiff.data.synthetic import SyntheticLayers

TENSORS = ("composite", "foreground", "background", "alpha", "trimap")


def _equal(a: dict, b: dict) -> bool:
    return (
        all(torch.equal(a[k], b[k]) for k in TENSORS)
        and a["key"] == b["key"]
        and a["fg_caption"] == b["fg_caption"]
    )


@pytest.mark.parametrize("image_format", ["png", "npy"])
def test_round_trip_is_bit_exact(tmp_path, image_format):
    src = SyntheticLayers(7, size=48, seed=2, split="val")
    manifest = write_shards(src, tmp_path, "val", samples_per_shard=3, image_format=image_format)
    assert manifest["num_samples"] == 7 and manifest["num_shards"] == 3 and manifest["num_skipped"] == 0
    assert [s["count"] for s in manifest["shards"]] == [3, 3, 1]
    assert set(manifest["samples"]) == {src[i]["key"] for i in range(7)}
    assert all(v.startswith("synthetic:") for v in manifest["samples"].values())
    got = list(ShardDataset(tmp_path, "val", size=48))
    assert len(got) == 7 and all(_equal(g, src[i]) for i, g in enumerate(got))


def test_shuffle_buffer_permutes_and_is_seeded(tmp_path):
    src = SyntheticLayers(12, size=16, seed=0)
    write_shards(src, tmp_path, "train", samples_per_shard=4)
    keys = [s["key"] for s in ShardDataset(tmp_path, "train", size=16, seed=1, shuffle_buffer=5)]
    again = [s["key"] for s in ShardDataset(tmp_path, "train", size=16, seed=1, shuffle_buffer=5)]
    assert sorted(keys) == sorted(src.key(i) for i in range(12)) and keys != sorted(keys) and keys == again
    ds = ShardDataset(tmp_path, "train", size=16, seed=1, shuffle_buffer=5)
    assert [s["key"] for s in ds] != [s["key"] for s in ds]  # the order changes with the epoch
    assert len(list(ShardDataset(tmp_path, "train", num_samples=5, size=16))) == 5


def test_resume_skips_finished_shards(tmp_path):
    src = SyntheticLayers(6, size=16, seed=0)
    write_shards(src, tmp_path, "train", samples_per_shard=2)
    out = tmp_path / "train"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    (out / "train-000001.json").unlink()  # as if the run died before marking shard 1 finished
    manifest = write_shards(src, tmp_path, "train", samples_per_shard=2)
    now = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    assert (
        now["train-000000.tar"] == stamps["train-000000.tar"]
        and now["train-000002.tar"] == stamps["train-000002.tar"]
    )
    assert now["train-000001.tar"] != stamps["train-000001.tar"] and manifest["num_samples"] == 6


def test_resume_refuses_other_settings_and_redoes_a_shorter_last_shard(tmp_path):
    write_shards(SyntheticLayers(5, size=16), tmp_path, "train", samples_per_shard=2)
    with pytest.raises(DataSourceError, match="other settings.*size"):
        write_shards(SyntheticLayers(5, size=32), tmp_path, "train", samples_per_shard=2)
    with pytest.raises(DataSourceError, match="other settings.*seed"):
        write_shards(SyntheticLayers(5, size=16, seed=1), tmp_path, "train", samples_per_shard=2)
    # --num grew from 5 to 6: the last shard held only index 4 and must gain index 5
    manifest = write_shards(SyntheticLayers(6, size=16), tmp_path, "train", samples_per_shard=2)
    assert manifest["num_samples"] == 6 and [s["count"] for s in manifest["shards"]] == [2, 2, 2]
    assert len(list(ShardDataset(tmp_path, "train", size=16, shuffle_buffer=0))) == 6


def test_outputs_are_readable_by_others(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    os.umask(umask)
    write_shards(SyntheticLayers(2, size=16), tmp_path, "train", samples_per_shard=1)
    for p in (tmp_path / "train").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p.name


class _Flaky(SyntheticLayers):
    """Index 1 is a bad file (skipped, recorded); index 4 crashes the job (e.g. out of disk)."""

    crash = True

    def load(self, index):
        if index == 1:
            raise BadSampleError("/data/x.png: not a readable image (broken)", "/data/x.png")
        if index == 4 and self.crash:
            raise RuntimeError("job killed")
        return super().load(index)


def test_crash_leaves_no_partial_shard_and_bad_samples_are_recorded(tmp_path):
    with pytest.raises(RuntimeError):
        write_shards(_Flaky(6, size=16), tmp_path, "train", samples_per_shard=3)
    files = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert files == ["train-000000.json", "train-000000.tar"]  # no temp file, no half shard 1
    fixed = _Flaky(6, size=16)
    fixed.crash = False  # the re-run after the crash
    manifest = write_shards(fixed, tmp_path, "train", samples_per_shard=3)
    assert manifest["shards"][0]["count"] == 2 and manifest["num_samples"] == 5
    assert manifest["skipped"] == [{"index": 1, "reason": "/data/x.png: not a readable image (broken)"}]
    on_disk = json.loads((tmp_path / "train" / "manifest.json").read_text())
    assert on_disk["num_skipped"] == 1 and on_disk["size"] == 16


def test_reader_skips_broken_records_and_refuses_bad_roots(tmp_path):
    src = SyntheticLayers(3, size=16)
    write_shards(src, tmp_path, "val", samples_per_shard=3)
    from layeringdiff.data.shards import encode_sample

    recs = [encode_sample(src.load(i), i) for i in range(3)]
    recs[1]["foreground.png"] = b"not a png"
    write_shard(tmp_path / "val" / "val-000000.tar", recs)
    ds = ShardDataset(tmp_path, "val", size=16)
    got = list(ds)
    assert [g["key"] for g in got] == [src.key(0), src.key(2)] and len(ds.skipped) == 1
    with pytest.raises(DataSourceError, match="16px"):
        ShardDataset(tmp_path, "val", size=32)
    with pytest.raises(DataSourceError, match="manifest"):
        ShardDataset(tmp_path, "test", size=16)


def test_workers_together_stream_every_sample_of_uneven_shards(tmp_path):
    # 3 shards of 2 over 2 workers: one worker holds 4 samples, the other 2. An even per-worker
    # budget (3) would silently drop one sample: an incomplete latent cache, a shorter test set.
    from torch.utils.data import DataLoader

    src = SyntheticLayers(6, size=16)
    write_shards(src, tmp_path, "val", samples_per_shard=2)
    loader = DataLoader(ShardDataset(tmp_path, "val", size=16), batch_size=None, num_workers=2)
    assert sorted(s["key"] for s in loader) == sorted(src.key(i) for i in range(6))
    capped = DataLoader(ShardDataset(tmp_path, "val", num_samples=4, size=16), batch_size=None, num_workers=2)
    assert len(list(capped)) == 4
