"""Shard layer codecs: the planar TIFF option (zstd + horizontal predictor) is lossless, ordered and small."""

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


def test_tiff_record_is_one_planar_tiff_smaller_than_the_png_members():
    sample = SyntheticLayers(1, size=64, seed=0)[0]
    record = encode_sample(sample, 0, "tiff")
    assert set(record) == {"__key__", "layers.tiff", "json"}
    img = Image.open(io.BytesIO(record["layers.tiff"]))
    assert img.format == "TIFF" and img.mode == "L" and img.size == (64, 8 * 64)
    planes = np.asarray(img).reshape(8, 64, 64)

    def u8(x: torch.Tensor) -> np.ndarray:
        return x.mul(255).round().byte().numpy()

    # plane order: F R, G, B | B R, G, B | alpha | trimap (0 / 128 / 255)
    assert np.array_equal(planes[0:3], u8(sample["foreground"]))
    assert np.array_equal(planes[3:6], u8(sample["background"]))
    assert np.array_equal(planes[6], u8(sample["alpha"])[0])
    assert np.array_equal(
        planes[7], np.select([sample["trimap"][0].numpy() == v for v in (0, 0.5, 1)], [0, 128, 255])
    )
    png = encode_sample(sample, 0, "png")
    png_bytes = sum(len(png[k]) for k in ("foreground.png", "background.png", "alpha.png", "trimap.png"))
    assert len(record["layers.tiff"]) < png_bytes
    back = decode_sample(record)
    for k in TENSORS:
        assert torch.equal(back[k], sample[k]), k
        assert back[k].is_contiguous(), k


def test_a_corrupt_tiff_member_is_a_one_line_error_and_skipped(tmp_path):
    sample = SyntheticLayers(1, size=32, seed=1)[0]
    record = encode_sample(sample, 0, "tiff")
    record["layers.tiff"] = record["layers.tiff"][:200]  # truncated
    with pytest.raises(ImageReadError, match="layers.tiff") as err:
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
            if m.name.startswith("000000001.") and m.name.endswith("layers.tiff"):
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
