"""Metric maths on constructed inputs, with tiny random-init extractors (no weights needed)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from layeringdiff.evaluation.report import read_table, write_tables
from layeringdiff.metrics import layer_errors, layer_errors_batch
from layeringdiff.metrics.clip_score import clip_score_from_embeddings
from layeringdiff.metrics.fid import frechet_distance, kernel_inception_distance, over_matte
from layeringdiff.metrics.miou import mask_iou
from layeringdiff.metrics.placement import placement_stats, summarize


def test_layer_errors_hand_computed():
    target = torch.zeros(3, 4, 4)
    pred = torch.zeros(3, 4, 4)
    pred[0, 0, 0] = 0.5  # one channel of one pixel off by 0.5
    pred[2, 1, 1] = -0.25
    n = 3 * 4 * 4
    e = layer_errors(pred, target)
    assert e["mad"] == pytest.approx((0.5 + 0.25) / n * 1e3)
    assert e["mse"] == pytest.approx((0.25 + 0.0625) / n * 1e3)
    assert e["sad"] == pytest.approx(0.75 / 1e3)
    # only the red channel of pixel (0, 0) in the mask
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = True
    m = layer_errors(pred, target, mask)
    assert m["mad"] == pytest.approx((0.5 + 0 + 0) / 3 * 1e3)
    assert m["sad"] == pytest.approx(0.5 / 1e3)


def test_layer_errors_weighted_by_alpha_hand_computed():
    target = torch.zeros(3, 2, 2)
    pred = torch.zeros(3, 2, 2)
    pred[:, 0, 0] = 0.4  # pixel (0, 0) off by 0.4 in every channel, alpha 0.5
    pred[1, 1, 1] = 0.2  # pixel (1, 1) off by 0.2 in green, alpha 0 (does not count)
    alpha = torch.tensor([[[0.5, 1.0], [1.0, 0.0]]])
    n = 3 * 2 * 2
    e = layer_errors(pred, target, weight=alpha)
    assert e["sad"] == pytest.approx(3 * 0.5 * 0.4 / 1e3)
    assert e["mad"] == pytest.approx(3 * 0.5 * 0.4 / n * 1e3)  # divided by all 12 values
    assert e["mse"] == pytest.approx(3 * 0.5 * 0.16 / n * 1e3)
    assert e["sad"] == pytest.approx(e["mad"] * n / 1e6)
    ones = layer_errors(pred, target, weight=torch.ones(1, 2, 2))
    assert ones == pytest.approx(layer_errors(pred, target))
    with pytest.raises(ValueError, match="not both"):
        layer_errors(pred, target, alpha > 0, weight=alpha)


def test_sad_is_mad_times_pixels_at_512(rng):
    # The paper's Table 4 identity: SAD = MAD x 512*512*3 / 1e6 (whole image, all channels).
    pred, target = torch.rand(3, 512, 512, generator=rng), torch.rand(3, 512, 512, generator=rng)
    e = layer_errors(pred, target)
    assert e["sad"] == pytest.approx(e["mad"] * 512 * 512 * 3 / 1e6, rel=1e-9)
    assert layer_errors(target, target) == {"mad": 0.0, "mse": 0.0, "sad": 0.0}


def test_batch_errors_equal_single(rng):
    pred, target = torch.rand(3, 3, 8, 8, generator=rng), torch.rand(3, 3, 8, 8, generator=rng)
    b = layer_errors_batch(pred, target)
    for i in range(3):
        single = layer_errors(pred[i], target[i])
        for k in ("mad", "mse", "sad"):
            assert float(b[k][i]) == pytest.approx(single[k], rel=1e-6)
    with pytest.raises(ValueError, match="differ"):
        layer_errors(pred, target[:, :, :4])


def _orthogonal_design(n=8, d=3):
    # Columns of a Sylvester-Hadamard matrix: zero mean, mutually orthogonal -> diagonal sample covariance.
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h[:, 1 : d + 1]


def test_fid_of_set_with_itself_is_zero():
    feats = np.random.default_rng(0).normal(size=(64, 8))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_fid_two_gaussians_closed_form():
    x = _orthogonal_design()
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 0.0, 1.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.25])
    f1, f2 = mu1 + x * s1, mu2 + x * s2
    var1, var2 = s1**2 * 8 / 7, s2**2 * 8 / 7  # sample covariance (ddof=1) of the design
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert frechet_distance(f1, f2) == pytest.approx(expected, rel=1e-6)


def test_kid_identical_near_zero_seeded_and_positive_for_shift():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(200, 16))
    # Full-size subsets are permutations, so the estimator is a closed form of the kernel matrix:
    # unbiased MMD^2 = 2 * (off-diagonal mean - full mean) for a set against itself (-> 0 as 1/m).
    m, d = feats.shape
    k = (feats @ feats.T / d + 1) ** 3
    expected = 2 * ((k.sum() - np.trace(k)) / (m * (m - 1)) - k.sum() / m**2) * 1e3
    assert kernel_inception_distance(feats, feats, num_subsets=3, max_subset_size=m) == pytest.approx(
        expected
    )
    other = rng.normal(size=(200, 16))  # an independent draw of the same distribution
    shifted = feats + 1.0
    k1 = kernel_inception_distance(shifted, other, seed=3, num_subsets=20, max_subset_size=100)
    k2 = kernel_inception_distance(shifted, other, seed=3, num_subsets=20, max_subset_size=100)
    assert k1 == k2 and k1 > 0
    same = kernel_inception_distance(feats, other, seed=3, num_subsets=20, max_subset_size=100)
    assert abs(same) < 0.05 * k1


def test_clip_score_from_embeddings():
    img = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    txt = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.5, 3**0.5 / 2], [5.0, 0.0]])
    assert clip_score_from_embeddings(img, txt).tolist() == pytest.approx([0.0, 0.0, 50.0, 100.0])


def test_placement_stats_rectangle():
    a = torch.zeros(1, 100, 200)
    a[0, 10:30, 50:150] = 1.0  # 20 rows x 100 cols
    a[0, 0, 0] = 0.5  # not above the threshold
    s = placement_stats(a)
    assert s["occupancy"] == pytest.approx(100 * 2000 / 20000)
    assert s["longest_span"] == pytest.approx(100 * max(20 / 100, 100 / 200))
    assert s["vertical_center"] == pytest.approx(100 * 20 / 100)  # rows 10..29: mean 19.5, +0.5
    assert s["horizontal_center"] == pytest.approx(50.0)
    assert placement_stats(torch.zeros(8, 8)) is None
    summary = summarize([{"occupancy": 1.0}, {"occupancy": 3.0}], keys=["occupancy"])
    assert summary == {"count": 2, "occupancy": 2.0, "occupancy_std": 1.0}


def test_mask_iou():
    t = np.zeros((4, 4), bool)
    t[:2] = True  # 8 px
    p = np.zeros((4, 4), bool)
    p[1:3] = True  # 8 px, 4 shared
    assert mask_iou(p, t) == pytest.approx(4 / 12)
    assert mask_iou(None, t) == 0.0
    assert mask_iou(p, np.zeros((4, 4), bool)) is None


def test_over_matte_uses_alpha():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (10, 20, 30, 0)
    rgba[1, 0] = (200, 0, 0, 128)
    out = over_matte(Image.fromarray(rgba, "RGBA"), matte=(0, 255, 0))
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[0, 1].tolist() == [0, 255, 0]
    assert out[1, 0].tolist() == [round(200 * 128 / 255), round(255 * 127 / 255), 0]


def test_write_tables_md_csv_json(tmp_path):
    rows = [{"method": "Ours", "mad": 2.1, "mad_std": 0.3}, {"method": "Germer", "mad": 2.58}]
    paths = write_tables(rows, tmp_path, "t4", columns=[("method", "Method"), ("mad", "MAD")], title="T")
    md = paths["md"].read_text()
    assert "| Method | MAD |" in md and "2.10 ± 0.30" in md and "| Germer | 2.58 |" in md
    assert paths["csv"].read_text().splitlines()[0] == "method,mad,mad_std"
    assert read_table(paths["json"])["rows"] == rows
    assert json.loads(paths["json"].read_text())["columns"][1] == {"key": "mad", "header": "MAD"}
    assert not list(tmp_path.glob(".*tmp"))


def test_layer_iou_with_constructed_segmenter():
    from layeringdiff.metrics.miou import layer_iou

    alpha = np.zeros((8, 8), np.float32)
    alpha[2:6, 2:6] = 0.9  # 16 px
    alpha[0, 0] = 0.5  # not foreground (> 0.5 is)
    prompts = []

    def segment(image, prompt):
        prompts.append(prompt)
        m = np.zeros((8, 8), bool)
        m[2:6, 4:8] = True  # 16 px, 8 shared
        return m

    layer = Image.new("RGB", (8, 8))
    assert layer_iou(segment, layer, "a cat", alpha) == pytest.approx(8 / 24)
    assert layer_iou(lambda im, p: None, layer, "a cat", alpha) == 0.0
    assert prompts == ["a cat"]
