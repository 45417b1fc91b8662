"""User boxes and the classical box -> mask step (GrabCut), used when no SAM weights are given."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch

from layeringdiff.images import tensor_to_uint8
from layeringdiff.pipeline.errors import InputError

log = logging.getLogger(__name__)

GRABCUT_REFINE_ROUNDS = 2  # GrabCut rounds re-seeded from the previous round's mask


def _grabcut_rounds(
    image_u8: np.ndarray, rect: tuple[int, int, int, int], iterations: int, rounds: int
) -> np.ndarray:
    x0, y0, x1, y1 = rect
    mask = np.zeros(image_u8.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(image_u8, mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    for _ in range(rounds):  # fresh colour models fitted to the last mask, not to the whole box
        fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        if not fg.any():
            break
        mask = np.full(mask.shape, cv2.GC_BGD, np.uint8)
        mask[y0:y1, x0:x1] = cv2.GC_PR_BGD
        mask[fg] = cv2.GC_PR_FGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(image_u8, mask, None, bgd, fgd, max(1, iterations // 2), cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def grabcut_mask(
    image: torch.Tensor,
    box: list[float],
    iterations: int = 5,
    refine_rounds: int = GRABCUT_REFINE_ROUNDS,
    colour_space: str = "lab",
) -> torch.Tensor:
    """Segment the object in ``box`` with OpenCV GrabCut (used when no SAM weights are given).

    The first round starts from the box; each of ``refine_rounds`` more rounds refits the colour
    models to the previous mask (the box's background no longer pollutes the object's model).
    ``colour_space`` "lab" runs GrabCut on CIELAB values, "rgb" on RGB; ``refine_rounds=0,
    colour_space="rgb"`` is the single-round GrabCut used before (experiments/bench_box_iou.py).
    """
    h, w = image.shape[-2:]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    bgr = np.ascontiguousarray(tensor_to_uint8(image)[:, :, ::-1])
    pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab) if colour_space == "lab" else bgr
    if (x1 - x0) * (y1 - y0) >= h * w:
        fg = np.zeros((h, w), bool)  # no pixel outside the box to learn the background from
    else:
        fg = _grabcut_rounds(pixels, (x0, y0, x1, y1), iterations, refine_rounds)
    if not fg.any():  # GrabCut gave up: fall back to the box itself
        fg[y0:y1, x0:x1] = True
    return torch.from_numpy(fg.astype(np.float32))[None]


def check_box(box, height: int, width: int) -> list[float]:
    """Validate a user box [x0, y0, x1, y1] in pixels; a box running past the image is clipped
    to it with a warning, one wholly outside (or empty) is refused."""
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        raise InputError(f"box must be four numbers [x0,y0,x1,y1], got {box!r}") from None
    if len(vals) != 4:
        raise InputError(f"box must be four numbers [x0,y0,x1,y1], got {len(vals)}")
    x0, y0, x1, y1 = vals
    if not all(np.isfinite(vals)) or not (x0 < x1 and y0 < y1):
        raise InputError(f"box {vals} is empty (need x0 < x1 and y0 < y1)")
    clipped = [max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)]
    if not (clipped[0] < clipped[2] and clipped[1] < clipped[3]):
        raise InputError(f"box {vals} is outside the {width}x{height} image")
    if clipped != vals:
        log.warning("box %s runs past the %dx%d image; clipped to %s", vals, width, height, clipped)
    return clipped


def box_mask(box: list[float], height: int, width: int) -> torch.Tensor:
    """(1, H, W) mask that is 1 inside the pixel box [x0, y0, x1, y1]."""
    mask = torch.zeros(1, height, width)
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(width, max(x0 + 1, int(np.ceil(box[2])))), min(height, max(y0 + 1, int(np.ceil(box[3]))))
    mask[:, y0:y1, x0:x1] = 1.0
    return mask
