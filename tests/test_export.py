"""Layered files: PSD and OpenRaster round trips, and the atomic output folder."""

import json
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from layeringdiff.compositing import composite_layers
from layeringdiff.export import check_writable, ora_bytes, read_ora, save_decomposition


def layers(n=2, h=24, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    bg = torch.rand(3, h, w, generator=g)
    fgs = [torch.rand(3, h, w, generator=g) for _ in range(n)]
    alphas = [torch.rand(1, h, w, generator=g) for _ in range(n)]
    alphas[0][:, :4] = 0.0  # fully transparent and fully opaque regions too
    alphas[0][:, 4:8] = 1.0
    return bg, fgs, alphas, composite_layers(bg, fgs, alphas)


def as_uint8(x: torch.Tensor) -> np.ndarray:
    return np.round(x.permute(1, 2, 0).numpy() * 255).astype(np.int16)


def quantized(t: torch.Tensor) -> torch.Tensor:
    return torch.round(t * 255) / 255


@pytest.mark.parametrize("n", [1, 3])
def test_output_folder_and_psd_round_trip(tmp_path, n):
    from psd_tools import PSDImage

    bg, fgs, alphas, comp = layers(n)
    out = save_decomposition(tmp_path / "out", comp, bg, fgs, alphas, {"prompt": "x"})
    names = sorted(os.listdir(out))
    if n == 1:
        assert names == sorted(
            [
                "alpha.png",
                "background.png",
                "composite.png",
                "foreground.png",
                "layers.ora",
                "layers.psd",
                "meta.json",
                "preview.png",
            ]
        )
        assert Image.open(out / "foreground.png").mode == "RGBA"
    else:
        assert {f"foreground_{i}.png" for i in (1, 2, 3)} <= set(names) and "alpha_3.png" in names
    assert json.loads((out / "meta.json").read_text()) == {"prompt": "x"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"

    psd = PSDImage.open(out / "layers.psd")
    assert [layer.name for layer in psd] == ["Background"] + [f"Foreground {i}" for i in range(n, 0, -1)]
    top = psd[-1].topil()
    assert top.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(top)[..., 3], as_uint8(alphas[0])[..., 0])
    # what Photoshop shows: the layers composited, equal to the composite within 1/255
    # (of the 8-bit layers; the float composite adds up to one more step of rounding per layer)
    expected = as_uint8(
        composite_layers(quantized(bg), [quantized(f) for f in fgs], [quantized(a) for a in alphas])
    )
    shown = np.asarray(psd.composite().convert("RGB")).astype(np.int16)
    assert np.abs(shown - expected).max() <= 1
    assert np.abs(shown - as_uint8(comp)).max() <= 1 + n
    # the stored merged image (what previewers and readers without layer support show) too
    with Image.open(out / "layers.psd") as merged:
        assert np.abs(np.asarray(merged.convert("RGB")).astype(np.int16) - expected).max() <= 1


def test_ora_round_trip_is_identical(tmp_path):
    bg, fgs, alphas, comp = layers(2)
    out = save_decomposition(tmp_path / "out", comp, bg, fgs, alphas, {})
    with zipfile.ZipFile(out / "layers.ora") as z:
        first = z.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert z.read("mimetype") == b"image/openraster"
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= set(z.namelist())
    ora = read_ora(out / "layers.ora")
    assert ora["size"] == (32, 24)
    assert [name for name, _ in ora["layers"]] == ["Foreground 1", "Foreground 2", "Background"]
    for i, ((_, img), a) in enumerate(zip(ora["layers"], alphas), start=1):
        np.testing.assert_array_equal(np.asarray(img), np.asarray(Image.open(out / f"foreground_{i}.png")))
        assert img.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(img)[..., 3], as_uint8(a)[..., 0])
    np.testing.assert_array_equal(
        np.asarray(ora["layers"][-1][1]), np.asarray(Image.open(out / "background.png"))
    )
    assert np.abs(np.asarray(ora["merged"]).astype(np.int16) - as_uint8(comp)).max() <= 3
    assert max(ora["thumbnail"].size) <= 256
    # writing the same layers again gives the same bytes (deterministic archive)
    assert (out / "layers.ora").read_bytes() == ora_bytes(bg, fgs, alphas)


def test_read_ora_rejects_other_zip(tmp_path):
    path = tmp_path / "x.ora"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("stack.xml", "<image/>")
    with pytest.raises(ValueError, match="not an OpenRaster"):
        read_ora(path)


def test_existing_or_unwritable_folder_fails_before_writing(tmp_path):
    bg, fgs, alphas, comp = layers(1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="already exists"):
        save_decomposition(tmp_path / "full", comp, bg, fgs, alphas, {})
    assert os.listdir(tmp_path / "full") == ["keep.txt"]
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(PermissionError, match="cannot create"):
        save_decomposition(tmp_path / "a_file" / "out", comp, bg, fgs, alphas, {})


def test_read_only_folder_is_refused(tmp_path):
    bg, fgs, alphas, comp = layers(1)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(PermissionError, match="not writable"):
            save_decomposition(locked / "out", comp, bg, fgs, alphas, {})
    finally:
        locked.chmod(0o700)


def test_failure_mid_write_leaves_nothing(tmp_path):
    bg, fgs, alphas, comp = layers(1)
    with pytest.raises(TypeError):
        save_decomposition(
            tmp_path / "out", comp, bg, fgs, alphas, {"bad": object.__new__(type("X", (), {"__str__": None}))}
        )
    assert list(tmp_path.iterdir()) == []


def test_output_folder_gets_the_umask_permissions(tmp_path):
    # The temporary folder renamed into place must not keep a private 0700 mode.
    bg, fgs, alphas, comp = layers(1)
    old = os.umask(0o022)
    try:
        out = save_decomposition(tmp_path / "out", comp, bg, fgs, alphas, {})
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_folder_where_creating_fails_is_refused_before_writing():
    # /proc passes os.access(W_OK) for root but nothing can be created there: a one-line
    # PermissionError up front, not an OSError traceback from the writer.
    with pytest.raises(PermissionError, match="not writable"):
        check_writable("/proc/layeringdiff_out")
