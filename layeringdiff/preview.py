"""``preview.png`` of an output folder: one labelled row, composite | each foreground over a
checkerboard | each alpha | background, so the layers can be seen side by side in one file."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from layeringdiff.images import tensor_to_uint8

PANEL_SIDE = 256  # longest side of one panel (smaller images keep their size)
CHECKER_CELL = 8  # checkerboard square, in panel pixels
CHECKER_LIGHT, CHECKER_DARK = 204, 153
LABEL_HEIGHT = 18
PAD = 4


def checkerboard(height: int, width: int, cell: int = CHECKER_CELL) -> np.ndarray:
    """(H, W, 3) uint8 light/dark grey squares of side ``cell``, light in the top-left corner."""
    rows = (np.arange(height) // cell)[:, None]
    cols = (np.arange(width) // cell)[None, :]
    grey = np.where((rows + cols) % 2 == 0, CHECKER_LIGHT, CHECKER_DARK).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def over_checkerboard(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight-alpha "over" of (H, W, 3) uint8 colour with (H, W) uint8 alpha on a checkerboard."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    board = checkerboard(*alpha.shape).astype(np.float32)
    return np.round(a * rgb.astype(np.float32) + (1.0 - a) * board).astype(np.uint8)


def _panel_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, PANEL_SIDE / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(arr)
    return np.asarray(img if img.size == size else img.resize(size, Image.BILINEAR))


def preview_panels(
    composite: torch.Tensor,
    background: torch.Tensor,
    foregrounds: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor],
) -> list[tuple[str, np.ndarray]]:
    """(label, (h, w, 3) uint8) panels in preview order, resized to at most :data:`PANEL_SIDE`.

    The foregrounds are resized with their alphas before compositing, so the checkerboard's
    squares keep their size in the preview.
    """
    h, w = composite.shape[-2:]
    size = _panel_size(h, w)
    single = len(foregrounds) == 1
    panels = [("composite", _resize(tensor_to_uint8(composite), size))]
    for i, (f, a) in enumerate(zip(foregrounds, alphas)):
        alpha = _resize(tensor_to_uint8(a)[..., 0], size)
        name = "foreground" if single else f"foreground {i + 1}"
        panels.append((name, over_checkerboard(_resize(tensor_to_uint8(f), size), alpha)))
    for i, a in enumerate(alphas):
        alpha = _resize(tensor_to_uint8(a)[..., 0], size)
        panels.append(("alpha" if single else f"alpha {i + 1}", np.repeat(alpha[..., None], 3, axis=2)))
    panels.append(("background", _resize(tensor_to_uint8(background), size)))
    return panels


def preview_image(
    composite: torch.Tensor,
    background: torch.Tensor,
    foregrounds: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor],
) -> Image.Image:
    """The labelled preview row (RGB): a white label strip above the panels, :data:`PAD` apart."""
    if len(foregrounds) != len(alphas) or not foregrounds:
        raise ValueError(
            f"need one alpha per foreground and at least one: {len(foregrounds)} vs {len(alphas)}"
        )
    panels = preview_panels(composite, background, foregrounds, alphas)
    ph, pw = panels[0][1].shape[:2]
    sheet = Image.new("RGB", (PAD + len(panels) * (pw + PAD), LABEL_HEIGHT + ph + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, arr) in enumerate(panels):
        x = PAD + i * (pw + PAD)
        draw.text((x + 2, 3), label, fill=(0, 0, 0))
        sheet.paste(Image.fromarray(arr), (x, LABEL_HEIGHT))
    return sheet


def panel_box(index: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of panel ``index`` in the preview of an ``height`` x ``width`` image."""
    pw, ph = _panel_size(height, width)
    x = PAD + index * (pw + PAD)
    return x, LABEL_HEIGHT, x + pw, LABEL_HEIGHT + ph
