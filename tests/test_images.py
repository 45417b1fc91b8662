"""Image reading refuses oversized files from their header, before any pixel is decoded."""

from __future__ import annotations

import struct
import time
import zlib

import pytest
from PIL import Image, ImageFile

from layeringdiff.images import ImageReadError, image_size, load_mask, load_rgb, open_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def large_canvas_png(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of ``width`` x ``height`` zero pixels, a few KB on disk.

    Decoded by PIL (mode "1", one byte per pixel) a 9000x9000 one takes 81 MB, and 1.6 GB as the
    float tensors a caller would make of it; written here without ever holding those pixels.
    """
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "huge.png"
    path.write_bytes(large_canvas_png(9000, 9000))
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decode (``Image.load``) fails loudly: a refusal must come from the header alone."""

    def load(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    monkeypatch.setattr(Image.Image, "load", load)


def test_the_large_canvas_is_small_on_disk_and_valid(huge_png):
    assert huge_png.stat().st_size < 150_000
    with Image.open(huge_png) as img:
        assert img.size == (9000, 9000) and img.mode == "1"


def test_oversized_images_are_refused_from_the_header(huge_png, no_decoding):
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match=r"huge.png: 9000x9000 is larger than 4096 pixels per side"):
        load_rgb(huge_png, max_side=4096)
    with pytest.raises(ImageReadError, match=r"9000x9000 is larger than 4096 pixels per side"):
        load_mask(huge_png, max_side=4096)
    with pytest.raises(ImageReadError, match=r"9000x9000 exceeds the 1000000-pixel limit"):
        open_image(huge_png, max_pixels=1_000_000)
    with pytest.raises(ImageReadError, match=r"is smaller than the 10000-pixel minimum side"):
        open_image(huge_png, min_side=10_000)
    assert image_size(huge_png) == (9000, 9000)
    assert time.perf_counter() - start < 2.0  # decoding 81 MP alone takes longer


def test_pil_limit_refuses_a_bomb_header_before_decoding(tmp_path, no_decoding):
    bomb = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match="bomb.png: .*decompression bomb"):
        open_image(bomb)


def test_images_within_the_limits_are_decoded(tmp_path):
    path = tmp_path / "ok.png"
    Image.new("RGB", (40, 24), (255, 0, 0)).save(path)
    x = load_rgb(path, max_side=40)
    assert tuple(x.shape) == (3, 24, 40) and float(x[0].min()) == 1.0 and float(x[1].max()) == 0.0
    assert image_size(path) == (40, 24)
    with pytest.raises(ImageReadError, match="missing.png: no such file"):
        image_size(tmp_path / "missing.png")
