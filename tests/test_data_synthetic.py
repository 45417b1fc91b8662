"""Synthetic generator, composite recipe and trimaps (64 px, CPU-cheap)."""

import cv2
import numpy as np
import pytest
import torch

from layeringdiff.compositing import check_trimap, trimap_from_alpha
from layeringdiff.data.recipe import make_sample, resize_crop, trimap_kernels
from layeringdiff.data.synthetic import COLOURS, SyntheticLayers, synth_background, synthetic_layers

CONTRACT = {"composite": 3, "foreground": 3, "background": 3, "alpha": 1, "trimap": 1}


@pytest.fixture(scope="module")
def samples():
    ds = SyntheticLayers(12, size=64, seed=3)
    return ds, [ds[i] for i in range(len(ds))]


def test_sample_contract(samples):
    _, items = samples
    for s in items:
        assert set(s) == set(CONTRACT) | {"key", "fg_caption"}
        for name, ch in CONTRACT.items():
            assert s[name].shape == (ch, 64, 64) and s[name].dtype == torch.float32
            assert 0.0 <= float(s[name].min()) and float(s[name].max()) <= 1.0
        assert isinstance(s["key"], str) and "/" not in s["key"]
        colour = s["fg_caption"].split()[1]
        assert colour in COLOURS and s["fg_caption"].split()[2] in ("blob", "star", "ring", "leaf")


def test_composite_is_eq1_of_8bit_layers(samples):
    _, items = samples
    for s in items:
        for layer in ("foreground", "background", "alpha"):  # every layer is exactly k / 255
            k = s[layer] * 255.0
            assert torch.equal(k, k.round())
        a, f, b = s["alpha"], s["foreground"], s["background"]
        assert torch.equal(s["composite"], a * f + (1 - a) * b)


def test_deterministic_by_seed_and_independent_of_order():
    a = SyntheticLayers(6, size=64, seed=7)
    b = SyntheticLayers(6, size=64, seed=7)
    for i in (5, 0, 3):  # any access order gives the same items
        sa, sb = a[i], b[i]
        assert sa["key"] == sb["key"] and sa["fg_caption"] == sb["fg_caption"]
        for k in CONTRACT:
            assert torch.equal(sa[k], sb[k])
    other = SyntheticLayers(6, size=64, seed=8)[0]
    assert not torch.equal(other["composite"], a[0]["composite"])
    val = SyntheticLayers(6, size=64, seed=7, split="val")[0]
    assert not torch.equal(val["composite"], a[0]["composite"]) and val["key"] != a[0]["key"]


def test_layers_are_not_trivial(samples):
    _, items = samples
    alphas = torch.stack([s["alpha"] for s in items])
    for a in alphas:  # every foreground has opaque, transparent and fractional pixels
        assert (a == 1).any() and (a == 0).any() and ((a > 0) & (a < 1)).any()
    # semi-transparent regions (alpha 0.2-0.8) appear in most samples, not just at edges
    semi = ((alphas > 0.2) & (alphas < 0.8)).flatten(1).float().mean(1)
    assert (semi > 0.005).float().mean() >= 0.5
    # backgrounds carry high-frequency detail: a sizeable Laplacian everywhere
    for s in items:
        bg = (s["background"].mean(0).numpy() * 255).astype(np.float32)
        assert np.abs(cv2.Laplacian(bg, cv2.CV_32F)).mean() > 1.0


def test_hair_is_thin():
    # thin strands: an opening with a 3x3 kernel removes a large part of the alpha outside the body
    found = False
    for seed in range(8):
        _, alpha, _, caption = synthetic_layers(seed, 256)
        if "hair" not in caption:
            continue
        body = cv2.morphologyEx((alpha > 0).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
        strands = (alpha > 0) & (body == 0)
        found = found or strands.sum() > 200
    assert found


def test_background_any_shape():
    img = synth_background(np.random.default_rng(0), (30, 50))
    assert img.shape == (30, 50, 3) and img.dtype == np.uint8


def test_trimap_values_and_unknown_band(samples):
    _, items = samples
    for s in items:
        a, t = s["alpha"], s["trimap"]
        check_trimap(t)
        assert torch.all(t[(a > 0) & (a < 1)] == 0.5)  # every fractional pixel is unknown
        assert torch.all(a[t == 1] == 1) and torch.all(a[t == 0] == 0)
        assert (t == 0.5).any()


def test_trimap_kernels_are_seeded_per_sample(samples):
    ds, items = samples
    sizes = set()
    for i, s in enumerate(items):
        fg_k, bg_k = trimap_kernels(np.random.default_rng(ds.pair(i).seed))
        assert 1 <= fg_k <= 29 and 1 <= bg_k <= 29
        sizes.add((fg_k, bg_k))
        assert torch.equal(s["trimap"], trimap_from_alpha(s["alpha"], fg_kernel=fg_k, bg_kernel=bg_k))
    assert len(sizes) > 3


def test_trimap_band_grows_with_kernel():
    alpha = np.zeros((64, 64), np.uint8)
    alpha[16:48, 16:48] = 255
    z = np.zeros((64, 64, 3), np.uint8)
    unknown = []
    for k in (1, 9, 29):
        s = make_sample(z, alpha, z, "k", trimap_seed=0, kernel_range=(k, k))
        unknown.append(int((s["trimap"] == 0.5).sum()))
    assert unknown[0] < unknown[1] < unknown[2]
    assert unknown[0] <= 4  # k = 1: no erosion, hard edge -> (almost) no unknown pixels


def test_resize_crop_recipe():
    from PIL import Image

    img = np.arange(100 * 200, dtype=np.uint32).reshape(100, 200).astype(np.uint8)
    rgb = np.dstack([img, img, img])
    out = resize_crop(rgb, 50)
    ref = np.asarray(Image.fromarray(rgb).resize((100, 50), Image.BICUBIC))[:, 25:75]
    # Pillow's filter, computed by torch in integer arithmetic: within one level per pass
    assert out.shape == (50, 50, 3) and np.abs(out.astype(int) - ref).max() <= 1
    assert np.array_equal(resize_crop(img, 50), out[..., 0])  # alpha: the same geometry and filter
    # downscaling is antialiased: 1-px stripes shrunk 1.95x become flat grey, not a moire pattern
    stripes = np.zeros((1000, 1000), np.uint8)
    stripes[:, ::2] = 255
    assert resize_crop(stripes, 512).std() < 5
    small = resize_crop(rgb[:20, :30], 64)  # smaller than the crop: upscaled
    assert small.shape == (64, 64, 3)
    tall = resize_crop(rgb[:, :60, 0], 30)
    assert tall.shape == (30, 30)
