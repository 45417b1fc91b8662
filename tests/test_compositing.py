import pytest
import torch

from layeringdiff.compositing import (
    check_trimap,
    composite,
    composite_layers,
    shuffle_alpha,
    trimap_from_alpha,
    trimap_from_mask,
    unshuffle_alpha,
)


def test_composite_is_eq1_exactly(rng):
    f = torch.rand(2, 3, 8, 8, generator=rng)
    b = torch.rand(2, 3, 8, 8, generator=rng)
    a = torch.rand(2, 1, 8, 8, generator=rng)
    c = composite(f, b, a)
    for ch in range(3):
        expected = a[:, 0] * f[:, ch] + (1 - a[:, 0]) * b[:, ch]
        assert torch.equal(c[:, ch], expected)
    assert torch.equal(composite(f, b, torch.ones_like(a)), f)
    assert torch.equal(composite(f, b, torch.zeros_like(a)), b)


def test_composite_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="alpha"):
        composite(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 5))


def test_composite_layers_order_top_first():
    b = torch.zeros(1, 3, 2, 2)
    top, low = torch.ones(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    a_top = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    a_low = torch.ones(1, 1, 2, 2)
    out = composite_layers(b, [top, low], [a_top, a_low])
    assert out[0, 0, 0, 0] == 1.0 and out[0, 0, 1, 1] == 0.5


def test_alpha_unshuffle_round_trip_and_shape(rng):
    a = torch.rand(2, 1, 64, 48, generator=rng)
    folded = unshuffle_alpha(a, 8)
    assert folded.shape == (2, 64, 8, 6)
    # channel k of a latent cell holds pixel (k // 8, k % 8) of that 8x8 block
    assert folded[1, 8 * 3 + 5, 2, 4] == a[1, 0, 2 * 8 + 3, 4 * 8 + 5]
    assert torch.equal(shuffle_alpha(folded, 8), a)
    with pytest.raises(ValueError, match="divisible"):
        unshuffle_alpha(torch.zeros(1, 1, 30, 32), 8)


def test_trimap_from_alpha_values_and_unknown_band():
    a = torch.zeros(1, 1, 64, 64)
    a[..., 16:48, 16:48] = 1.0
    a[..., 30:34, 10:16] = 0.4  # a semi-transparent strip
    t = trimap_from_alpha(a, fg_kernel=7, bg_kernel=7)
    check_trimap(t)
    assert set(torch.unique(t).tolist()) == {0.0, 0.5, 1.0}
    soft = (a > 0) & (a < 1)
    assert bool((t[soft] == 0.5).all())
    # the erosion opens an unknown band on both sides of the hard edge
    row = t[0, 0, 20]  # a row through the hard left edge at column 16 (kernel radius 3)
    assert row[16] == 0.5 and row[15] == 0.5 and row[11] == 0.0 and row[20] == 1.0
    wider = trimap_from_alpha(a, fg_kernel=21, bg_kernel=21)
    assert (wider == 0.5).sum() > (t == 0.5).sum()


def test_trimap_from_mask_matte_anything_rule():
    m = torch.zeros(1, 200, 200)
    m[:, 50:150, 50:150] = 1
    t = trimap_from_mask(m, kernel_size=10, erode_iterations=5, dilate_iterations=5)
    check_trimap(t)
    assert t[0, 100, 100] == 1.0 and t[0, 5, 5] == 0.0
    assert t[0, 100, 52] == 0.5 and t[0, 100, 40] == 0.5  # band on both sides of the edge
    assert (t == 1.0).sum() < (m == 1).sum() < ((t == 1.0) | (t == 0.5)).sum()


def test_check_trimap_rejects_other_values():
    with pytest.raises(ValueError, match="trimap"):
        check_trimap(torch.tensor([0.0, 0.25, 1.0]))
