"""Caches as tar shards: N sharded runs write exactly what one run writes; read from paths and URLs."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from layeringdiff.data.cache_reader import CacheReader, MissingSidecarError
from layeringdiff.data.datamodule import LayerDataModule

ROOT = Path(__file__).resolve().parents[1]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sharded_latent_cache_equals_one_run(tmp_path, monkeypatch):
    script = load_script("encode_latents")
    common = ["experiment=fbdd_smoke", f"paths.cache_dir={tmp_path / 'cache'}", "data.size=32"]
    common += ["data.num_train=3", "data.num_val=2"]
    opts = ["--samples-per-shard", "1", "--batch-size", "2"]
    script.main(["--out", str(tmp_path / "one"), *opts, "--", *common])
    # shard 0 of 2 named explicitly, shard 1 from a SLURM array's variables
    script.main(["--out", str(tmp_path / "two"), *opts, "--shard", "0/2", "--", *common])
    partial = CacheReader(tmp_path / "two")
    assert len(partial.manifest["missing"]) == 2  # train-000001, val-000001 belong to shard 1
    with pytest.raises(MissingSidecarError, match="cache incomplete: 2 shard"):
        LayerDataModule(size=32, num_train=3, sidecars=[str(tmp_path / "two")]).build("train")[1]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert script.main(["--out", str(tmp_path / "two"), *opts, "--", *common]) == {
        "train": {"encoded": 1, "skipped": 0},
        "val": {"encoded": 1, "skipped": 0},
    }
    one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert sorted(one) == sorted(two) and len([n for n in one if n.endswith(".tar")]) == 5
    for name in one:
        assert one[name] == two[name], name  # byte for byte, the manifest included
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert script.main(["--out", str(tmp_path / "two"), "--merge"])["missing"] == []


def make_source_shards(root: Path) -> None:
    from layeringdiff.data.shard_writer import write_shards
    from layeringdiff.data.synthetic import SyntheticLayers

    write_shards(SyntheticLayers(5, size=32, seed=0, split="train"), root, "train", samples_per_shard=4)


def test_sharded_fbdd_output_cache_over_prepared_shards_equals_one_run(tmp_path):
    make_source_shards(tmp_path / "shards")
    cache = load_script("cache_fbdd_outputs")
    data = ["data=shards", f"data.dataset.root={tmp_path / 'shards'}", "data.size=32"]
    base = ["--mode", "degrade", "--no-progress", "--splits", "train", "--batch-size", "2"]
    assert cache.main(["--out", str(tmp_path / "one"), *base, *data])["train"]["written"] == 5
    for i in range(2):  # two processes for two cache shards (one per source shard), 2 loader workers each
        cache.main(["--out", str(tmp_path / "two"), *base, "--shard", f"{i}/2", "--num-workers", "2", *data])
    one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert sorted(one) == sorted(two)
    assert [n for n in one if n.endswith(".tar")] == ["train/train-000000.tar", "train/train-000001.tar"]
    for name in one:
        assert one[name] == two[name], name
    # a cache shard holds the samples of its source shard, in their order (the workers deal batches)
    reader = CacheReader(tmp_path / "one")
    assert [s["count"] for s in reader.manifest["shards"]] == [4, 1]
    from layeringdiff.data.shards import ShardDataset

    source = ShardDataset(tmp_path / "shards", "train", size=32, shuffle_buffer=0)
    assert [k for k, _ in CacheReader(tmp_path / "two").samples()] == [x["key"] for x in source]


@pytest.fixture
def degrade_cache(tmp_path):
    cache = load_script("cache_fbdd_outputs")
    out = tmp_path / "fbdd_outputs"
    args = ["--out", str(out), "--mode", "degrade", "--no-progress", "--splits", "train"]
    cache.main([*args, "--samples-per-shard", "2", "data=synthetic", "data.size=32", "data.num_train=5"])
    return out


@pytest.mark.parametrize("scheme", ["file", "pipe", "pipe_template"])
def test_cache_read_from_urls_equals_the_folder(degrade_cache, scheme):
    url = {
        "file": f"file://{degrade_cache}",
        "pipe": f"pipe:cat {degrade_cache}",
        "pipe_template": f"pipe:cat {degrade_cache}/{{name}}",
    }[scheme]
    local = LayerDataModule(size=32, num_train=5, sidecars=[str(degrade_cache)]).build("train")
    remote = LayerDataModule(size=32, num_train=5, sidecars=[url]).build("train")
    for i in (3, 0, 4):  # out of order: the pipe reader reloads whole shards
        a, b = local[i], remote[i]
        assert set(a) == set(b) and "fbdd_background" in b
        for k in ("fbdd_foreground", "fbdd_background"):
            assert torch.equal(a[k], b[k]), (i, k)
    # the cached image is the degraded ground truth, not some other sample's
    assert not torch.equal(local[0]["fbdd_background"], local[1]["fbdd_background"])
    streamed = dict(CacheReader(url).samples())
    assert sorted(streamed) == sorted(CacheReader(degrade_cache).keys()) and len(streamed) == 5


def test_cache_reader_errors_are_one_line(tmp_path, degrade_cache):
    with pytest.raises(MissingSidecarError, match="no cache manifest"):
        CacheReader(tmp_path / "nowhere").get("x")
    with pytest.raises(MissingSidecarError, match=r"no cache manifest \(command failed"):
        CacheReader(f"pipe:cat {tmp_path / 'nowhere'}").get("x")
    with pytest.raises(MissingSidecarError, match=r"no entry for sample 'nope' \(not in the cache\)"):
        CacheReader(degrade_cache).get("nope")
    tar = degrade_cache / "train" / "train-000000.tar"
    tar.write_bytes(tar.read_bytes()[:1000])  # truncated
    reader = CacheReader(degrade_cache)
    with pytest.raises(Exception, match="shorter than its record"):
        reader.get(reader.keys()[1])
