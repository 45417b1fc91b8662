"""Eq. 1 of the paper and the alpha / trimap helpers shared by data, models and pipeline.

Tensor contract (docs/architecture.md): images are float in [0, 1] with shape (B, 3, H, W), alpha is
(B, 1, H, W) in [0, 1] and a trimap is (B, 1, H, W) with values in {0, 0.5, 1}. Unbatched
(C, H, W) tensors are accepted wherever noted.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

TRIMAP_BG, TRIMAP_UNKNOWN, TRIMAP_FG = 0.0, 0.5, 1.0


def composite(foreground: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Alpha-blend a foreground over a background: C = a * F + (1 - a) * B (Eq. 1).

    Args:
        foreground: (B, 3, H, W) or (3, H, W) float in [0, 1].
        background: same shape as ``foreground``.
        alpha: (B, 1, H, W) or (1, H, W) float in [0, 1]; broadcast over channels.

    Returns:
        The composite, same shape and dtype as ``foreground``.
    """
    if foreground.shape != background.shape:
        raise ValueError(
            f"foreground {tuple(foreground.shape)} and background {tuple(background.shape)} differ"
        )
    if alpha.shape[-2:] != foreground.shape[-2:] or alpha.shape[-3] != 1:
        raise ValueError(f"alpha {tuple(alpha.shape)} does not match layer {tuple(foreground.shape)}")
    return alpha * foreground + (1.0 - alpha) * background


def composite_layers(
    background: torch.Tensor, foregrounds: list[torch.Tensor], alphas: list[torch.Tensor]
) -> torch.Tensor:
    """Composite several layers given top-most first: the last foreground sits just above the background."""
    if len(foregrounds) != len(alphas):
        raise ValueError(f"{len(foregrounds)} foregrounds but {len(alphas)} alphas")
    out = background
    for fg, a in zip(reversed(foregrounds), reversed(alphas)):
        out = composite(fg, out, a)
    return out


def unshuffle_alpha(alpha: torch.Tensor, factor: int) -> torch.Tensor:
    """Fold an alpha matte into latent resolution without losing pixels: (B,1,H,W) -> (B,f*f,H/f,W/f)."""
    if alpha.ndim != 4 or alpha.shape[1] != 1:
        raise ValueError(f"alpha must be (B, 1, H, W), got {tuple(alpha.shape)}")
    h, w = alpha.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"alpha size {h}x{w} is not divisible by the VAE factor {factor}")
    return F.pixel_unshuffle(alpha, factor)


def shuffle_alpha(folded: torch.Tensor, factor: int) -> torch.Tensor:
    """Inverse of :func:`unshuffle_alpha`: (B, f*f, h, w) -> (B, 1, h*f, w*f)."""
    if folded.ndim != 4 or folded.shape[1] != factor * factor:
        raise ValueError(f"expected (B, {factor * factor}, h, w), got {tuple(folded.shape)}")
    return F.pixel_shuffle(folded, factor)


def _as_masks(x: torch.Tensor) -> tuple[np.ndarray, bool]:
    """(B,1,H,W) or (1,H,W) tensor -> (B,H,W) numpy array, and whether a batch dim was present."""
    batched = x.ndim == 4
    arr = x.detach().float().cpu().numpy()
    arr = arr[:, 0] if batched else arr[None, 0]
    return arr, batched


def _from_masks(arr: np.ndarray, batched: bool, like: torch.Tensor) -> torch.Tensor:
    out = torch.from_numpy(arr).to(device=like.device, dtype=torch.float32)[:, None]
    return out if batched else out[0]


def trimap_from_alpha(
    alpha: torch.Tensor,
    fg_kernel: int | list[int] = 10,
    bg_kernel: int | list[int] | None = None,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Matting-literature trimap: erode the definite-FG and definite-BG masks with ellipses.

    Pixels with ``alpha >= 1 - eps`` (definite FG) and ``alpha <= eps`` (definite BG) are eroded
    with elliptical kernels of the given sizes; everything else, including every pixel with
    ``eps < alpha < 1 - eps``, becomes unknown (0.5).

    Args:
        alpha: (B, 1, H, W) or (1, H, W).
        fg_kernel: kernel size for the FG erosion (one per batch item, or shared); 1 = no erosion.
        bg_kernel: kernel size for the BG erosion; defaults to ``fg_kernel``.
        eps: tolerance for "definite".

    Returns:
        Trimap with values exactly {0, 0.5, 1}, same shape as ``alpha``.
    """
    masks, batched = _as_masks(alpha)
    n = masks.shape[0]
    fg_k = [fg_kernel] * n if isinstance(fg_kernel, int) else list(fg_kernel)
    bg_src = fg_kernel if bg_kernel is None else bg_kernel
    bg_k = [bg_src] * n if isinstance(bg_src, int) else list(bg_src)
    out = np.full_like(masks, TRIMAP_UNKNOWN, dtype=np.float32)
    for i in range(n):
        fg = (masks[i] >= 1.0 - eps).astype(np.uint8)
        bg = (masks[i] <= eps).astype(np.uint8)
        if fg_k[i] > 1:
            fg = cv2.erode(fg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (fg_k[i], fg_k[i])))
        if bg_k[i] > 1:
            bg = cv2.erode(bg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (bg_k[i], bg_k[i])))
        out[i][fg.astype(bool)] = TRIMAP_FG
        out[i][bg.astype(bool)] = TRIMAP_BG
    return _from_masks(out, batched, alpha)


# Matte-Anything's trimap from a mask: a 10x10 kernel, 5 erosions and 5 dilations.
TRIMAP_KERNEL_SIZE, TRIMAP_ITERATIONS = 10, 5


def trimap_from_mask(
    mask: torch.Tensor,
    kernel_size: int = TRIMAP_KERNEL_SIZE,
    erode_iterations: int = TRIMAP_ITERATIONS,
    dilate_iterations: int = TRIMAP_ITERATIONS,
) -> torch.Tensor:
    """Matte-Anything trimap from a binary mask: eroded -> 1, dilated band -> 0.5, rest -> 0.

    Uses a square ``kernel_size`` x ``kernel_size`` kernel of ones (Matte-Anything: 10x10, 5
    iterations each way). ``mask`` is thresholded at 0.5.
    """
    masks, batched = _as_masks(mask)
    kernel = np.ones((kernel_size, kernel_size), np.uint8)
    out = np.zeros_like(masks, dtype=np.float32)
    for i in range(masks.shape[0]):
        m = (masks[i] > 0.5).astype(np.uint8)
        eroded = cv2.erode(m, kernel, iterations=erode_iterations)
        dilated = cv2.dilate(m, kernel, iterations=dilate_iterations)
        out[i][dilated.astype(bool)] = TRIMAP_UNKNOWN
        out[i][eroded.astype(bool)] = TRIMAP_FG
    return _from_masks(out, batched, mask)


def check_trimap(trimap: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every value is one of {0, 0.5, 1}."""
    valid = (trimap == TRIMAP_BG) | (trimap == TRIMAP_UNKNOWN) | (trimap == TRIMAP_FG)
    if not bool(valid.all()):
        bad = torch.unique(trimap[~valid])[:5].tolist()
        raise ValueError(f"trimap values must be in {{0, 0.5, 1}}; found {bad}")
