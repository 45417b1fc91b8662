"""The paper's composite recipe: resize, centre crop, C = aF + (1-a)B, and a seeded random trimap.

Images enter as uint8 arrays (H, W, C) and leave as float tensors in [0, 1] (the tensor contract of
DESIGN.md). Quantising every layer to uint8 *before* compositing means a sample is a pure function
of three 8-bit images plus the trimap, so shards (lossless PNG) reproduce it bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from layeringdiff.compositing import composite, trimap_from_alpha

# GCA / MatteFormer trimaps: elliptical erosion kernels of random size 1..29.
TRIMAP_KERNEL_RANGE = (1, 29)


def resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is ``size`` (bicubic), then centre-crop ``size`` x ``size``.

    The bicubic filter is Pillow's, which widens its support when downscaling (antialiased, like
    torchvision's bicubic resize): OpenCV's ``INTER_CUBIC`` samples the source at the output grid
    only and aliases fine detail (hair, textures) into moire when a 1-2 MP photo shrinks to 512.

    Args:
        image: uint8 array (H, W) or (H, W, C) with C in {3, 4}.
        size: output side length.

    Returns:
        uint8 array (size, size[, C]); bicubic overshoot saturates to [0, 255].
    """
    from PIL import Image

    h, w = image.shape[:2]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        if (nh, nw) != (h, w):
            image = np.array(Image.fromarray(np.ascontiguousarray(image)).resize((nw, nh), Image.BICUBIC))
        top, left = (nh - size) // 2, (nw - size) // 2
        image = image[top : top + size, left : left + size]
    return np.ascontiguousarray(image)


def trimap_kernels(
    rng: np.random.Generator, kernel_range: tuple[int, int] = TRIMAP_KERNEL_RANGE
) -> tuple[int, int]:
    """Draw the FG and BG erosion kernel sizes (independently, inclusive range)."""
    lo, hi = int(kernel_range[0]), int(kernel_range[1])
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def uint8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> float32 (C, H, W) in [0, 1]."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255.0)


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
        t = trimap_from_alpha(a, fg_kernel=fg_k, bg_kernel=bg_k)
    else:
        t = torch.from_numpy(trimap_uint8_to_values(trimap))[None]
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
    return _TRIMAP_LUT[t]


_TRIMAP_LUT = np.full(256, 0.5, np.float32)
_TRIMAP_LUT[:64] = 0.0
_TRIMAP_LUT[193:] = 1.0
