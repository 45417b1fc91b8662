"""preview.png: composite | foregrounds over a checkerboard | alphas | background, labelled."""

import numpy as np
import pytest
import torch
from PIL import Image

from layeringdiff.export import save_decomposition
from layeringdiff.preview import (
    CHECKER_CELL,
    CHECKER_DARK,
    CHECKER_LIGHT,
    LABEL_HEIGHT,
    checkerboard,
    panel_box,
    preview_image,
)


def layers(n: int, h: int = 64, w: int = 96):
    """A red background; foreground i is a solid colour in its own column band, alpha 0 elsewhere."""
    bg = torch.zeros(3, h, w)
    bg[0] = 1.0
    fgs, alphas = [], []
    for i in range(n):
        f = torch.zeros(3, h, w)
        f[1 + i % 2] = 1.0  # green or blue
        a = torch.zeros(1, h, w)
        a[:, :, (i * w) // n : (i * w) // n + w // (2 * n)] = 1.0
        fgs.append(f)
        alphas.append(a)
    comp = bg.clone()
    for f, a in zip(reversed(fgs), reversed(alphas)):
        comp = a * f + (1 - a) * comp
    return comp, bg, fgs, alphas


def test_checkerboard_pattern():
    board = checkerboard(2 * CHECKER_CELL, 2 * CHECKER_CELL)[..., 0]
    assert board[0, 0] == CHECKER_LIGHT and board[0, CHECKER_CELL] == CHECKER_DARK
    assert board[CHECKER_CELL, 0] == CHECKER_DARK and board[CHECKER_CELL, CHECKER_CELL] == CHECKER_LIGHT


@pytest.mark.parametrize("n", [1, 3])
def test_preview_panels_pixels(n):
    comp, bg, fgs, alphas = layers(n)
    h, w = comp.shape[-2:]
    img = np.asarray(preview_image(comp, bg, fgs, alphas))
    panels = [img[t:b, x0:x1] for x0, t, x1, b in (panel_box(i, h, w) for i in range(2 * n + 2))]
    assert img.shape[1] >= panel_box(2 * n + 1, h, w)[2]  # one panel per layer and alpha, nothing cut off
    np.testing.assert_array_equal(panels[0], (comp.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    board = checkerboard(h, w)
    for i in range(n):
        a = alphas[i][0].numpy() > 0.5
        fg_panel = panels[1 + i]
        # alpha = 0: the checkerboard shows through (both of its greys present); alpha = 1: the colour
        np.testing.assert_array_equal(fg_panel[~a], board[~a])
        assert {CHECKER_LIGHT, CHECKER_DARK} <= set(np.unique(fg_panel[~a]))
        expected = (fgs[i].permute(1, 2, 0).numpy()[a] * 255).astype(np.uint8)
        np.testing.assert_array_equal(fg_panel[a], expected)
        alpha_panel = panels[1 + n + i]
        np.testing.assert_array_equal(alpha_panel[..., 0], np.where(a, 255, 0))
    assert (panels[-1] == [255, 0, 0]).all()  # the background
    labels = img[:LABEL_HEIGHT]
    for i in range(2 * n + 2):  # dark label text above every panel, on white
        x0, _, x1, _ = panel_box(i, h, w)
        strip = labels[:, x0:x1]
        assert (strip < 100).all(axis=2).any(), f"no label above panel {i}"
        assert (strip == 255).all(axis=2).mean() > 0.5


def test_preview_large_image_scaled_and_written(tmp_path):
    comp, bg, fgs, alphas = layers(1, 600, 300)
    out = save_decomposition(tmp_path / "o", comp, bg, fgs, alphas, {})
    img = Image.open(out / "preview.png")
    assert img.mode == "RGB" and img.height == LABEL_HEIGHT + 256 + 4  # longest side 600 -> 256
    x0, t, x1, b = panel_box(3, 600, 300)
    assert (x1 - x0, b - t) == (128, 256)
    assert (np.asarray(img)[t:b, x0:x1] == [255, 0, 0]).all()
