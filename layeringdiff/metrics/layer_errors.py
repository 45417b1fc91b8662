"""Layer errors against ground truth (Table 4): MAD, MSE, SAD and LPIPS in the paper's scaling.

Values are in [0, 1]. The error is summed over the whole image and all three channels and divided
by the full value count, which is what the paper's numbers satisfy (every Table 4 row has
SAD = MAD x 512*512*3 / 1e6). A per-pixel ``weight`` (e.g. the true alpha for the foreground)
scales each value's error and keeps that division, so SAD = MAD x N still holds.
"""

from __future__ import annotations

import torch

MAD_SCALE = 1e3
MSE_SCALE = 1e3
SAD_SCALE = 1e-3
LPIPS_SCALE = 1e2


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"layer_errors: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ"
        )


def layer_errors(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> dict[str, float]:
    """MAD x1e3, MSE x1e3 and SAD / 1e3 of one layer (or a batch, pooled) against its ground truth.

    Args:
        pred: predicted layer, (3, H, W) or (B, 3, H, W), values in [0, 1].
        target: ground-truth layer of the same shape.
        mask: optional region, broadcastable to ``pred`` (e.g. ``alpha > 0`` of shape (1, H, W));
            MAD and MSE are then means over the masked values and SAD their sum.
            ``None`` (the paper's setting) measures every pixel and channel.
        weight: optional per-value weight in [0, 1], broadcastable to ``pred`` (e.g. the true
            alpha (1, H, W)): MAD = sum(w |d|) / N, MSE = sum(w d^2) / N and SAD = sum(w |d|) with
            N the full value count, so SAD = MAD x N as without it. Not combined with ``mask``.

    Returns:
        ``{"mad": ..., "mse": ..., "sad": ...}`` as Python floats; for a batch the values are
        summed over all images for SAD and averaged for MAD/MSE (use one image per call to get
        per-image numbers).
    """
    _check_pair(pred, target)
    if mask is not None and weight is not None:
        raise ValueError("layer_errors: give a mask or a weight, not both")
    # float32 differences (exact to ~1e-7 for values in [0, 1]), float64 sums
    d = pred.float() - target.float()
    if weight is not None:
        w = torch.broadcast_to(weight.to(torch.float64), d.shape)
        sad = float((w * d.abs()).sum(dtype=torch.float64))
        mse = float((w * d.square()).sum(dtype=torch.float64))
        return {
            "mad": sad / d.numel() * MAD_SCALE,
            "mse": mse / d.numel() * MSE_SCALE,
            "sad": sad * SAD_SCALE,
        }
    if mask is not None:
        d = d[torch.broadcast_to(mask.to(torch.bool), d.shape)]
    count = d.numel()
    if count == 0:
        return {"mad": 0.0, "mse": 0.0, "sad": 0.0}
    sad = float(d.abs().sum(dtype=torch.float64))
    return {
        "mad": sad / count * MAD_SCALE,
        "mse": float(d.square().sum(dtype=torch.float64)) / count * MSE_SCALE,
        "sad": sad * SAD_SCALE,
    }


def layer_errors_batch(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image MAD/MSE/SAD for a batch (B, C, H, W) in the same scaling, whole image, all channels."""
    _check_pair(pred, target)
    d = (pred.float() - target.float()).flatten(1)
    sad = d.abs().sum(1, dtype=torch.float64)
    return {
        "mad": sad / d.shape[1] * MAD_SCALE,
        "mse": d.square().sum(1, dtype=torch.float64) / d.shape[1] * MSE_SCALE,
        "sad": sad * SAD_SCALE,
    }
