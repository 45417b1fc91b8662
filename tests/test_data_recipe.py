"""The fast recipe (torch uint8 resize, uint8 trimap, one RGBA resize) against the slow reference it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from layeringdiff.compositing import composite, trimap_from_alpha
from layeringdiff.data.folders import FolderComposites
from layeringdiff.data.recipe import (
    resize_crop,
    trimap_kernels,
    trimap_uint8,
    trimap_uint8_to_tensor,
    uint8_to_tensor,
)
from layeringdiff.data.sources import load_background, load_foreground
from layeringdiff.data.synthetic_folders import write_bg20k_folder, write_magick_folder

ALL = {"train": 1.0, "val": 0.0, "test": 0.0}
LEVEL = 1.0 / 255.0


def _reference_resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The recipe's resize before this change: Pillow bicubic of each layer, then the centre crop."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        image = np.array(Image.fromarray(np.ascontiguousarray(image)).resize((nw, nh), Image.BICUBIC))
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def _reference_to_tensor(arr: np.ndarray) -> torch.Tensor:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255.0)


def _reference_sample(ds: FolderComposites, index: int) -> dict:
    """The old FolderComposites.load: RGB and alpha resized separately by Pillow, float trimap."""
    _, fg, bg, trimap_seed = ds.pair(index)
    rgb, alpha = load_foreground(fg.path)
    rgb = _reference_resize_crop(np.ascontiguousarray(rgb), ds.size)
    alpha = _reference_resize_crop(np.ascontiguousarray(alpha), ds.size)
    background = _reference_resize_crop(load_background(bg.path), ds.size)
    f, b, a = _reference_to_tensor(rgb), _reference_to_tensor(background), _reference_to_tensor(alpha)
    fg_k, bg_k = trimap_kernels(np.random.default_rng(trimap_seed), ds.kernel_range)
    return {
        "composite": composite(f, b, a),
        "foreground": f,
        "background": b,
        "alpha": a,
        "trimap": trimap_from_alpha(a, fg_kernel=fg_k, bg_kernel=bg_k),
    }


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    # 256 px foregrounds (an exact 2x to 128) and 0.1-0.2 MP photos of assorted aspects (not 2x)
    fg = write_magick_folder(root / "MAGICK", 4, size=256, seed=3)
    bg = write_bg20k_folder(root / "BG", 4, seed=3, testval_fraction=0.0, megapixels=(0.1, 0.2))
    return FolderComposites(fg, bg, split="train", size=128, seed=0, fractions=ALL, jpeg_draft=False)


def test_folder_samples_match_the_reference_recipe(folders):
    """Every output tensor of the fast path within the documented bound of the reference."""
    for i in range(len(folders)):
        new, ref = folders.load(i), _reference_sample(folders, i)
        for name in ("foreground", "background", "alpha", "composite"):
            assert new[name].shape == ref[name].shape and new[name].dtype == torch.float32, name
            diff = (new[name] - ref[name]).abs()
            # at most 2 levels (one per resize pass), on few pixels; the mean stays far below a level
            assert diff.max() <= 2 * LEVEL + 1e-6, (name, i, float(diff.max()) * 255)
            assert diff.mean() <= 0.05 * LEVEL, (name, i, float(diff.mean()) * 255)
        flipped = (new["trimap"] != ref["trimap"]).float().mean()
        assert flipped <= 0.005, (i, float(flipped))  # alpha 254 <-> 255 or 0 <-> 1 can flip a class


@pytest.mark.parametrize(
    "shape, size",
    [((256, 256, 4), 128), ((300, 533, 3), 128), ((517, 333), 128), ((40, 60, 3), 64), ((128, 97, 4), 128)],
)
def test_resize_crop_is_pillows_bicubic_within_two_levels(shape, size):
    """Uniform noise (worst case for rounding), down, up and no-op sizes; RGBA channel by channel."""
    img = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    out = resize_crop(img, size).astype(int)
    if img.ndim == 3 and img.shape[2] == 4:  # straight alpha: RGB and alpha as separate layers
        ref = np.dstack(
            [_reference_resize_crop(img[..., :3], size), _reference_resize_crop(img[..., 3], size)]
        )
    else:
        ref = _reference_resize_crop(img, size)
    assert out.shape == ref.shape == (size, size, *shape[2:])
    diff = np.abs(out - ref.astype(int))
    assert diff.max() <= 2 and (diff > 0).mean() < 0.03, (diff.max(), (diff > 0).mean())


def test_resize_crop_exact_when_already_square():
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(resize_crop(img, 64), img)


def test_uint8_trimap_equals_the_float_trimap():
    rng = np.random.default_rng(1)
    alpha = np.zeros((96, 96), np.uint8)
    alpha[20:76, 20:76] = 255
    alpha[40:56, :] = rng.choice(np.array([0, 1, 2, 128, 253, 254, 255], np.uint8), size=(16, 96))
    a = torch.from_numpy(alpha)[None].float().div(255.0)
    for fg_k, bg_k in [(1, 1), (3, 9), (29, 5), (11, 11)]:
        expected = trimap_from_alpha(a, fg_kernel=fg_k, bg_kernel=bg_k)
        t = trimap_uint8(alpha, fg_k, bg_k)
        assert set(np.unique(t).tolist()) <= {0, 128, 255}
        got = torch.from_numpy(t).float().div(255.0).round(decimals=1)[None]  # 128 -> 0.5
        assert torch.equal(got, expected), (fg_k, bg_k)


def test_stored_trimap_values_map_to_the_nearest_class():
    t = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = trimap_uint8_to_tensor(t)
    assert got.shape == (1, 16, 16) and got.dtype == torch.float32
    expected = np.where(t < 64, 0.0, np.where(t < 193, 0.5, 1.0)).astype(np.float32)  # 0 | 128 | 255
    assert np.array_equal(got[0].numpy(), expected)


def test_uint8_to_tensor_equals_the_reference():
    rgb = np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    for arr in (rgb, rgb[:, :, ::-1], rgb[:, :, 0], rgb[::2, 1::3]):
        out = uint8_to_tensor(arr)
        assert out.is_contiguous() and torch.equal(out, _reference_to_tensor(arr))


@pytest.fixture(scope="module")
def big_backgrounds(tmp_path_factory):
    """Photos at least twice the crop (draft mode applies) and one under twice (it cannot)."""
    root = tmp_path_factory.mktemp("draft")
    fg = write_magick_folder(root / "MAGICK", 3, size=256, seed=5)
    bg = write_bg20k_folder(root / "BG", 3, seed=5, testval_fraction=0.0, megapixels=(0.3, 0.5))
    return fg, bg


def test_jpeg_draft_decodes_at_least_the_crop_and_stays_close(big_backgrounds):
    """Draft mode (DCT-domain 1/2, 1/4, 1/8 scaling) is a documented change: bounded here."""
    fg, bg = big_backgrounds
    exact = FolderComposites(fg, bg, split="train", size=128, seed=0, fractions=ALL, jpeg_draft=False)
    draft = FolderComposites(fg, bg, split="train", size=128, seed=0, fractions=ALL)
    assert draft.jpeg_draft and not exact.jpeg_draft
    reduced = changed = 0
    for i in range(len(draft)):
        path = draft.pair(i)[2].path
        full, small = load_background(path), load_background(path, draft_to=128)
        assert min(small.shape[:2]) >= 128  # never decoded below the crop: no upscaling
        reduced += small.shape[0] < full.shape[0]
        a, b = exact.load(i), draft.load(i)
        for name in ("foreground", "alpha", "trimap"):  # PNG foregrounds: untouched
            assert torch.equal(a[name], b[name]), name
        diff = (a["background"] - b["background"]).abs()
        changed += bool(diff.max() > 0)  # the data set really took the draft path
        assert diff.mean() <= 2.5 * LEVEL and diff.flatten().quantile(0.99) <= 10 * LEVEL, i
    assert reduced == changed == len(draft)  # every photo here is >= 2x the crop: draft mode applies


def test_jpeg_draft_leaves_pngs_and_small_photos_alone(tmp_path):
    img = np.random.default_rng(3).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img).save(tmp_path / "b.jpg", quality=95)
    assert np.array_equal(load_background(tmp_path / "a.png", draft_to=64), img)  # PNG: no draft
    full = load_background(tmp_path / "b.jpg")
    assert np.array_equal(load_background(tmp_path / "b.jpg", draft_to=150), full)  # < 2x: full size
    assert load_background(tmp_path / "b.jpg", draft_to=64).shape == (150, 100, 3)  # 2x: 200 // 64 < 4
    assert load_background(tmp_path / "b.jpg", draft_to=50).shape == (75, 50, 3)  # 4x reduction
