"""Shard layer codecs: the TIFF (zstd + horizontal predictor) option is lossless, RGB-ordered and small."""

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from layeringdiff.data.shard_writer import write_shards
from layeringdiff.data.shards import ShardDataset, decode_sample, encode_sample
from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.images import ImageReadError

TENSORS = ("composite", "foreground", "background", "alpha", "trimap")


def test_tiff_shards_round_trip_bit_exact(tmp_path):
    src = SyntheticLayers(5, size=40, seed=4, split="val")
    manifest = write_shards(src, tmp_path, "val", samples_per_shard=2, image_format="tiff")
    assert manifest["image_format"] == "tiff" and manifest["num_samples"] == 5
    got = list(ShardDataset(tmp_path, "val", size=40))
    assert len(got) == 5
    for i, g in enumerate(got):
        want = src[i]
        assert g["key"] == want["key"]
        for k in TENSORS:
            assert torch.equal(g[k], want[k]), (i, k)


def test_tiff_members_are_rgb_tiffs_smaller_than_raw(tmp_path):
    sample = SyntheticLayers(1, size=64, seed=0)[0]
    record = encode_sample(sample, 0, "tiff")
    assert {"foreground.tiff", "background.tiff", "alpha.png", "trimap.png", "json"} <= set(record)
    for layer in ("foreground", "background"):
        data = record[f"{layer}.tiff"]
        img = Image.open(io.BytesIO(data))
        assert img.format == "TIFF" and img.mode == "RGB"
        expected = sample[layer].mul(255).round().byte().permute(1, 2, 0).numpy()
        assert np.array_equal(np.asarray(img), expected)  # channel order: R, G, B
        assert len(data) < expected.nbytes  # compressed
    back = decode_sample(record)
    for k in TENSORS:
        assert torch.equal(back[k], sample[k]), k


def test_a_corrupt_tiff_member_is_a_one_line_error_and_skipped(tmp_path):
    sample = SyntheticLayers(1, size=32, seed=1)[0]
    record = encode_sample(sample, 0, "tiff")
    record["foreground.tiff"] = record["foreground.tiff"][:200]  # truncated
    with pytest.raises(ImageReadError, match="foreground.tiff") as err:
        decode_sample(record)
    assert "\n" not in str(err.value)
    # the reader skips such a record and counts it
    src = SyntheticLayers(3, size=32, seed=1)
    write_shards(src, tmp_path, "train", samples_per_shard=3, image_format="tiff")
    tar_path = next((tmp_path / "train").glob("*.tar"))
    members = []
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()
            if m.name.startswith("000000001.") and m.name.endswith("background.tiff"):
                data = data[:100]
            members.append((m.name, data))
    with tarfile.open(tar_path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ds = ShardDataset(tmp_path, "train", size=32, shuffle_buffer=0)
    assert [s["key"] for s in ds] == [src.key(0), src.key(2)] and len(ds.skipped) == 1


def test_unknown_image_format_is_refused():
    sample = SyntheticLayers(1, size=16, seed=0)[0]
    with pytest.raises(ValueError, match="image_format"):
        encode_sample(sample, 0, "jpeg")
