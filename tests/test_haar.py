import numpy as np
import pytest
import pywt
import torch

from layeringdiff.networks.haar import haar_dwt2, haar_highfreq_loss, haar_idwt2, haar_wavedec2


def _pywt_details(x: np.ndarray, levels: int) -> list[tuple[np.ndarray, ...]]:
    """Finest-first detail coefficients of one 2-D array, straight from pywt."""
    return list(reversed(pywt.wavedec2(x, "haar", level=levels)[1:]))


@pytest.mark.parametrize("size", [(32, 32), (24, 40), (27, 19), (9, 9)])
def test_coefficients_match_pywt(size):
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    approx, details = haar_wavedec2(x, levels=3)
    for b in range(2):
        for c in range(3):
            ref = pywt.wavedec2(x[b, c].numpy(), "haar", level=3)
            np.testing.assert_allclose(approx[b, c].numpy(), ref[0], atol=1e-5)
            for ours, theirs in zip(details, _pywt_details(x[b, c].numpy(), 3)):
                for o, t in zip(ours, theirs):  # cH, cV, cD in pywt's order and signs
                    assert o[b, c].shape == t.shape
                    np.testing.assert_allclose(o[b, c].numpy(), t, atol=1e-5)


def test_float32_matches_pywt():
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    _, details = haar_wavedec2(x, levels=3)
    for ours, theirs in zip(details, _pywt_details(x[0, 0].double().numpy(), 3)):
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o[0, 0].numpy(), t, atol=1e-5)


def test_sign_convention_on_one_block():
    # [[a, b], [c, d]] = [[1, 2], [3, 5]]: pywt gives cH=-2.5, cV=-1.5, cD=0.5.
    x = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    approx, (ch, cv, cd) = haar_dwt2(x)
    assert approx.item() == pytest.approx(5.5)
    assert (ch.item(), cv.item(), cd.item()) == pytest.approx((-2.5, -1.5, 0.5))


def test_loss_equals_pywt_formula():
    g = torch.Generator().manual_seed(3)
    pred, target = torch.rand(2, 3, 16, 20, generator=g), torch.rand(2, 3, 16, 20, generator=g)
    expected = 0.0
    for s in range(3):
        for k in range(3):
            diffs = []
            for b in range(2):
                for c in range(3):
                    p = _pywt_details(pred[b, c].double().numpy(), 3)[s][k]
                    t = _pywt_details(target[b, c].double().numpy(), 3)[s][k]
                    diffs.append((p - t) ** 2)
            expected += np.mean(diffs)  # mean over batch, channel and the N_s positions
    assert haar_highfreq_loss(pred, target).item() == pytest.approx(expected, rel=1e-5)


def test_loss_zero_for_identical_and_blind_to_colour_offset():
    g = torch.Generator().manual_seed(4)
    pred, target = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    assert haar_highfreq_loss(target, target).item() == 0.0
    offset = torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)
    base = haar_highfreq_loss(pred, target)
    assert base.item() > 0
    torch.testing.assert_close(haar_highfreq_loss(pred + offset, target), base, rtol=1e-5, atol=1e-7)
    # An odd size is padded by repetition, so a constant still has no detail.
    odd = torch.rand(1, 3, 21, 13, generator=g)
    torch.testing.assert_close(haar_highfreq_loss(odd + 0.25, odd), torch.tensor(0.0), atol=1e-10, rtol=0)


def test_loss_sees_only_high_frequencies():
    x = torch.zeros(1, 1, 16, 16)
    noisy = x.clone()
    noisy[..., ::2, :] = 1.0  # stripes: pure finest-scale horizontal detail
    loss = haar_highfreq_loss(noisy, x, levels=3)
    # cH at scale 0 is -0.5*2 = -1 ... magnitude 1 everywhere, other bands 0.
    assert loss.item() == pytest.approx(1.0)


def _autograd_loss(pred, target, levels=3):
    """The same loss written plainly on haar_wavedec2, differentiated by autograd."""
    _, details = haar_wavedec2(pred - target, levels)
    return sum(band.square().mean() for detail in details for band in detail)


@pytest.mark.parametrize("size", [(16, 16), (13, 10), (7, 11)])
def test_handwritten_backward_matches_autograd(size):
    g = torch.Generator().manual_seed(5)
    pred = torch.rand(2, 3, *size, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, *size, generator=g, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(haar_highfreq_loss(pred, target) * 1.7, (pred, target))
    ref = torch.autograd.grad(_autograd_loss(pred, target) * 1.7, (pred, target))
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r)


def test_gradcheck_odd_size():
    pred = torch.rand(1, 1, 7, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 1, 7, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: haar_highfreq_loss(p, target, 2), (pred,))


def test_inverse_matches_pywt_waverec2():
    x = torch.rand(3, 10, 14, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    approx, detail = haar_dwt2(x)
    torch.testing.assert_close(haar_idwt2(approx, detail), x)
    coeffs = [approx[0].numpy(), tuple(d[0].numpy() for d in detail)]
    np.testing.assert_allclose(pywt.waverec2(coeffs, "haar"), x[0].numpy(), atol=1e-10)


def test_shape_checks():
    with pytest.raises(ValueError, match="shapes differ"):
        haar_highfreq_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 6))
    with pytest.raises(ValueError, match="levels"):
        haar_highfreq_loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), levels=0)


def test_half_precision_and_strided_inputs():
    g = torch.Generator().manual_seed(7)
    pred, target = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    ref = haar_highfreq_loss(pred, target)
    half = pred.bfloat16().requires_grad_()
    loss = haar_highfreq_loss(half, target.bfloat16())
    assert loss.dtype == torch.float32  # accumulated in float32
    torch.testing.assert_close(loss, ref, rtol=2e-2, atol=0)
    loss.backward()
    assert half.grad.dtype == torch.bfloat16
    strided = pred.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, other strides
    torch.testing.assert_close(haar_highfreq_loss(strided, target), ref)
    channels_last = pred.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(haar_highfreq_loss(channels_last, target), ref)
