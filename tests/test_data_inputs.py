"""Folder sources and every bad input of the issue: converted, skipped and counted, or refused."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from layeringdiff.data.folders import FolderComposites
from layeringdiff.data.pairs import make_pairs, read_pair_list, write_pair_list
from layeringdiff.data.sources import (
    BadSampleError,
    DataSourceError,
    background_split,
    list_foregrounds,
    load_background,
    load_foreground,
)
from layeringdiff.data.synthetic_folders import write_bg20k_folder, write_magick_folder

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
RNG = np.random.default_rng(0)
RGBA = RNG.integers(0, 256, (48, 56, 4), dtype=np.uint8)
RGBA[..., 3][:4] = 0  # some transparency


@pytest.fixture(scope="module")
def layout(folder_layout):
    return folder_layout(12, 12, size=64, seed=1, megapixels=(0.005, 0.01), testval_fraction=0.5)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# ----------------------------------------------------------------------------- converted


def test_16bit_rgba_foreground_is_converted(tmp_path):
    cv2.imwrite(str(tmp_path / "fg16.png"), (RGBA.astype(np.uint16) * 257)[:, :, [2, 1, 0, 3]])
    rgb, alpha = load_foreground(tmp_path / "fg16.png")
    assert (
        rgb.dtype == np.uint8 and np.array_equal(rgb, RGBA[..., :3]) and np.array_equal(alpha, RGBA[..., 3])
    )


def test_grayscale_alpha_and_palette_foregrounds_are_converted(tmp_path):
    Image.fromarray(RGBA[..., [0, 3]].copy(), "LA").save(tmp_path / "la.png")
    rgb, alpha = load_foreground(tmp_path / "la.png")
    assert np.array_equal(rgb[..., 1], RGBA[..., 0]) and np.array_equal(alpha, RGBA[..., 3])
    Image.fromarray(RGBA[..., :3].copy()).convert("P").save(tmp_path / "p.png", transparency=0)
    rgb, alpha = load_foreground(tmp_path / "p.png")
    assert rgb.shape == (48, 56, 3) and set(np.unique(alpha)) <= {0, 255}


def test_16bit_gray_cmyk_and_exif_backgrounds_are_converted(tmp_path):
    cv2.imwrite(str(tmp_path / "g16.png"), RGBA[..., 0].astype(np.uint16) * 257)
    bg = load_background(tmp_path / "g16.png")
    assert bg.shape == (48, 56, 3) and np.array_equal(bg[..., 2], RGBA[..., 0])
    Image.fromarray(RGBA[..., :3].copy()).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert load_background(tmp_path / "cmyk.jpg").shape == (48, 56, 3)
    img = Image.fromarray(RGBA[..., :3].copy())
    exif = img.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: stored landscape, shown portrait
    img.save(tmp_path / "exif.jpg", exif=exif)
    assert load_background(tmp_path / "exif.jpg").shape == (56, 48, 3)


def test_image_smaller_than_crop_is_upscaled(layout, tmp_path):
    ds = FolderComposites(layout / "MAGICK", layout / "BG-20k", size=200, fractions=FRACTIONS)
    assert ds[0]["composite"].shape == (3, 200, 200)  # 64 px foregrounds, ~100 px backgrounds


# ----------------------------------------------------------------------------- skipped / refused


@pytest.mark.parametrize(
    "name,make,reason",
    [
        ("rgb.png", lambda p: Image.fromarray(RGBA[..., :3].copy()).save(p), "no alpha channel"),
        ("gray.png", lambda p: Image.fromarray(RGBA[..., 0].copy()).save(p), "no alpha channel"),
        ("trunc.png", lambda p: p.write_bytes(_png_bytes()[: len(_png_bytes()) // 2]), "truncated"),
        ("text.png", lambda p: p.write_text("not an image"), "not a readable image"),
        ("empty.png", lambda p: Image.fromarray(np.zeros((40, 40, 4), np.uint8)).save(p), "empty"),
        ("tiny.png", lambda p: Image.fromarray(RGBA[:10, :10].copy()).save(p), "smaller than"),
        ("bomb.png", lambda p: p.write_bytes(_bomb()), "decompression bomb"),
    ],
)
def test_bad_foreground_refused_with_one_line_naming_file(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(BadSampleError) as err:
        load_foreground(path)
    msg = str(err.value)
    assert str(path) in msg and reason in msg and "\n" not in msg and err.value.path == str(path)


def _png_bytes() -> bytes:
    return cv2.imencode(".png", RGBA)[1].tobytes()


def _bomb() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def test_corrupt_files_are_skipped_and_counted(layout, tmp_path):
    import shutil

    fg = tmp_path / "fg"
    shutil.copytree(layout / "MAGICK", fg)
    files = sorted((fg / "images").rglob("*.png"))
    files[0].write_bytes(files[0].read_bytes()[:200])  # truncated
    files[1].write_text("garbage")  # not an image
    Image.open(files[2]).convert("RGB").save(files[2])  # alpha dropped
    ds = FolderComposites(
        fg, layout / "BG-20k", split="train", size=32, fractions={"train": 1.0, "val": 0.0, "test": 0.0}
    )
    samples = [ds[i] for i in range(len(ds))]
    assert len(samples) == len(ds) == 12
    assert {str(f) for f in files[:3]} == set(ds.skipped)  # each counted once, with a reason
    assert any("no alpha" in r for r in ds.skipped.values())
    with pytest.raises(BadSampleError):  # load() reports instead of skipping (shard writer)
        ds.load(next(i for i in range(len(ds)) if ds.pair(i)[1].path == files[1]))


def test_missing_and_empty_folders_are_refused(tmp_path):
    with pytest.raises(DataSourceError, match="no such folder"):
        list_foregrounds(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="no image files"):
        list_foregrounds(tmp_path / "empty")
    with pytest.raises(DataSourceError, match="no image files"):
        background_split(tmp_path / "empty", "train")


def test_magick_index_rows_and_header(layout, tmp_path):
    listing = list_foregrounds(layout / "MAGICK")
    assert listing.layout == "magick" and len(listing.entries) == 12
    assert all(e.caption.startswith("a") and e.path.parent.name == e.id[:2] for e in listing.entries)
    bad = tmp_path / "m"
    (bad / "images").mkdir(parents=True)
    (bad / "magick_index.tsv").write_text("id\tcaption\nabc\tx\n")
    with pytest.raises(DataSourceError, match="page_id"):
        list_foregrounds(bad)
    # rows whose image is missing are skipped at listing time and counted
    (bad / "magick_index.tsv").write_text(
        "page_id\tsubject\n" + "".join(f"{e.id}\t{e.caption}\n" for e in listing.entries) + "ffmissing\tx\n"
    )
    for e in listing.entries:
        (bad / "images" / e.id[:2]).mkdir(exist_ok=True)
        (bad / "images" / e.id[:2] / f"{e.id}.png").write_bytes(e.path.read_bytes())
    got = list_foregrounds(bad)
    assert len(got.entries) == 12 and list(got.skipped) == ["ffmissing"]


def test_any_rgba_folder_with_caption_files(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.fromarray(RGBA).save(tmp_path / "sub" / "cat.png")
    (tmp_path / "sub" / "cat.txt").write_text("a cat\n")
    listing = list_foregrounds(tmp_path)
    assert [(e.id, e.caption) for e in listing.entries] == [("sub_cat", "a cat")]


def test_bg20k_split_and_pair_list(layout, tmp_path):
    train = background_split(layout / "BG-20k", "train").entries
    val = background_split(layout / "BG-20k", "val", FRACTIONS).entries
    test = background_split(layout / "BG-20k", "test", FRACTIONS).entries
    assert all(e.id.startswith("train_") for e in train) and all(
        e.id.startswith("testval_") for e in val + test
    )
    assert not {e.id for e in val} & {e.id for e in test}
    fgs = list_foregrounds(layout / "MAGICK").entries
    pairs = make_pairs(fgs, test, 5, seed=0)
    assert pairs == make_pairs(fgs, test, 5, seed=0) and pairs != make_pairs(fgs, test, 5, seed=1)
    write_pair_list(tmp_path / "p.tsv", pairs)
    assert read_pair_list(tmp_path / "p.tsv") == pairs
    ds = FolderComposites(
        layout / "MAGICK", layout / "BG-20k", split="test", size=32, pairs={"test": tmp_path / "p.tsv"}
    )
    assert len(ds) == 5 and [ds[i]["key"] for i in range(5)] == [p.key for p in pairs]
    (tmp_path / "bad.tsv").write_text("key\tfg\n")
    with pytest.raises(DataSourceError, match="bad.tsv"):
        read_pair_list(tmp_path / "bad.tsv")


def test_writer_resumes_and_writes_real_layouts(tmp_path):
    write_magick_folder(tmp_path / "M", 3, size=64, seed=0)
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "M").rglob("*.png")}
    write_magick_folder(tmp_path / "M", 4, size=64, seed=0)
    pngs = list((tmp_path / "M").rglob("*.png"))
    assert len(pngs) == 4 and all(p.stat().st_mtime_ns == t for p, t in first.items())
    img = Image.open(pngs[0])
    assert img.mode == "RGBA" and img.size == (64, 64)
    write_bg20k_folder(tmp_path / "B", 4, seed=0, megapixels=(1.0, 2.0))
    for jpg in (tmp_path / "B").rglob("*.jpg"):
        w, h = Image.open(jpg).size
        assert 0.95e6 <= w * h <= 2.05e6
