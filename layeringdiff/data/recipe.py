"""The paper's composite recipe: resize, centre crop, C = aF + (1-a)B, and a seeded random trimap.

Images enter as uint8 arrays (H, W, C) and leave as float tensors in [0, 1] (the tensor contract of
docs/architecture.md). Quantising every layer to uint8 *before* compositing means a sample is a pure function
of three 8-bit images plus the trimap, so shards (lossless PNG) reproduce it bit for bit.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from layeringdiff.compositing import composite

# GCA / MatteFormer trimaps: elliptical erosion kernels of random size 1..29.
TRIMAP_KERNEL_RANGE = (1, 29)


def resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is ``size`` (antialiased bicubic), then centre-crop ``size`` x ``size``.

    The filter is Pillow's bicubic (a = -0.5), which widens its support when downscaling
    (antialiased): OpenCV's ``INTER_CUBIC`` samples the source at the output grid only and aliases
    fine detail (hair, textures) into moire when a 1-2 MP photo shrinks to 512. It runs as torch's
    uint8 antialiased bicubic (the same filter in integer arithmetic, all channels of an RGBA image
    in one pass, ~8x faster than Pillow on one core): equal to Pillow's result for a 2x reduction,
    otherwise within one level per pass (at most 2/255, on under 1% of the pixels; tested).
    RGBA is resized channel by channel (straight, not premultiplied, alpha), as F and a separately.

    Args:
        image: uint8 array (H, W) or (H, W, C), any C (1, 3, 4).
        size: output side length.

    Returns:
        uint8 array (size, size[, C]), contiguous; bicubic overshoot saturates to [0, 255].
    """
    h, w = image.shape[:2]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        if (nh, nw) != (h, w):
            image = _resize_uint8(image, nh, nw)
        top, left = (nh - size) // 2, (nw - size) // 2
        image = image[top : top + size, left : left + size]
    return np.ascontiguousarray(image)


def _resize_uint8(image: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """uint8 (H, W[, C]) -> (nh, nw[, C]) with torch's antialiased bicubic, channels-last (no copy in)."""
    if image.dtype != np.uint8:
        raise ValueError(f"resize_crop expects uint8, got {image.dtype}")
    with warnings.catch_warnings():  # a decoded image is read-only; interpolate only reads it
        warnings.simplefilter("ignore", UserWarning)
        x = torch.from_numpy(np.ascontiguousarray(image))
    hwc = x if x.ndim == 3 else x[:, :, None]
    nchw = hwc.permute(2, 0, 1)[None]  # a channels-last view: torch's fast uint8 path reads it as is
    out = F.interpolate(nchw, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    out = out[0].permute(1, 2, 0)
    return (out if image.ndim == 3 else out[:, :, 0]).numpy()


def trimap_kernels(
    rng: np.random.Generator, kernel_range: tuple[int, int] = TRIMAP_KERNEL_RANGE
) -> tuple[int, int]:
    """Draw the FG and BG erosion kernel sizes (independently, inclusive range)."""
    lo, hi = int(kernel_range[0]), int(kernel_range[1])
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def uint8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> float32 (C, H, W) in [0, 1] (one transposing convert, one divide)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if min(arr.strides) < 0:  # e.g. a BGR -> RGB view: torch takes no negative strides
        arr = np.ascontiguousarray(arr)
    with warnings.catch_warnings():  # read-only input is only read
        warnings.simplefilter("ignore", UserWarning)
        src = torch.from_numpy(arr).permute(2, 0, 1)
    out = torch.empty(src.shape, dtype=torch.float32)
    return out.copy_(src).div_(255.0)


def trimap_uint8(alpha: np.ndarray, fg_kernel: int, bg_kernel: int) -> np.ndarray:
    """:func:`~layeringdiff.compositing.trimap_from_alpha` of a uint8 alpha, as uint8 {0, 128, 255}.

    The same masks (a >= 1 - 1e-3 and a <= 1e-3 of a / 255 in float32, i.e. a == 255 and a == 0)
    eroded by the same elliptical kernels, without converting the alpha to float first (tested
    equal to the float function).
    """
    fg = np.greater_equal(alpha, _FG_MIN).view(np.uint8)
    bg = np.less_equal(alpha, _BG_MAX).view(np.uint8)
    if fg_kernel > 1:
        fg = cv2.erode(fg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (fg_kernel, fg_kernel)))
    if bg_kernel > 1:
        bg = cv2.erode(bg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (bg_kernel, bg_kernel)))
    out = np.full(alpha.shape, 128, np.uint8)
    out[fg.view(bool)] = 255
    out[bg.view(bool)] = 0
    return out


def make_sample(
    foreground: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray,
    key: str,
    fg_caption: str = "",
    trimap_seed: int | None = None,
    kernel_range: tuple[int, int] = TRIMAP_KERNEL_RANGE,
    trimap: np.ndarray | None = None,
) -> dict:
    """Assemble one training sample from same-size 8-bit layers.

    Args:
        foreground: uint8 (H, W, 3).
        alpha: uint8 (H, W).
        background: uint8 (H, W, 3).
        key: stable, file-name-safe sample id.
        fg_caption: caption of the foreground ("" if unknown).
        trimap_seed: seed of the per-sample random erosion kernels.
        kernel_range: inclusive range of the kernel sizes.
        trimap: a ready uint8 trimap (0 / 128 / 255) instead of drawing one (shards).

    Returns:
        The sample dict of the data contract (``composite``, ``foreground``, ``background``,
        ``alpha``, ``trimap``, ``key``, ``fg_caption``).
    """
    if not (foreground.shape[:2] == alpha.shape[:2] == background.shape[:2]):
        raise ValueError(f"{key}: layer sizes differ: {foreground.shape}, {alpha.shape}, {background.shape}")
    f, b, a = uint8_to_tensor(foreground), uint8_to_tensor(background), uint8_to_tensor(alpha)
    if trimap is None:
        fg_k, bg_k = trimap_kernels(np.random.default_rng(trimap_seed), kernel_range)
        trimap = trimap_uint8(alpha, fg_k, bg_k)
    t = trimap_uint8_to_tensor(trimap)
    return {
        "composite": composite(f, b, a),
        "foreground": f,
        "background": b,
        "alpha": a,
        "trimap": t,
        "key": key,
        "fg_caption": fg_caption,
    }


def trimap_to_uint8(trimap: torch.Tensor) -> np.ndarray:
    """Trimap (1, H, W) in {0, 0.5, 1} -> uint8 (H, W) in {0, 128, 255}."""
    t = trimap[0].numpy()
    out = np.zeros(t.shape, np.uint8)
    out[t == 0.5] = 128
    out[t == 1.0] = 255
    return out


def trimap_uint8_to_values(t: np.ndarray) -> np.ndarray:
    """uint8 trimap (H, W) in {0, 128, 255} (any value: nearest class) -> float32 {0, 0.5, 1}."""
    return trimap_uint8_to_tensor(t)[0].numpy()


def trimap_uint8_to_tensor(t: np.ndarray) -> torch.Tensor:
    """uint8 trimap (H, W) -> float32 (1, H, W) in {0, 0.5, 1}: class 0 / 1 / 2 by a uint8 table, times 0.5."""
    classes = cv2.LUT(np.ascontiguousarray(t), _TRIMAP_CLASS)
    return torch.from_numpy(classes)[None].float().mul_(0.5)


_TRIMAP_CLASS = np.full(256, 1, np.uint8)  # nearest of 0 / 128 / 255
_TRIMAP_CLASS[:64] = 0
_TRIMAP_CLASS[193:] = 2
# Definite FG / BG of trimap_from_alpha (eps 1e-3) on a uint8 alpha: the float32 thresholds, tabulated.
_ALPHA_FLOAT = np.arange(256, dtype=np.float32) / np.float32(255.0)
_FG_MIN = int(np.flatnonzero(_ALPHA_FLOAT >= np.float32(1.0 - 1e-3))[0])  # 255
_BG_MAX = int(np.flatnonzero(_ALPHA_FLOAT <= np.float32(1e-3))[-1])  # 0
