"""Foreground placement statistics (Table 2) from a foreground alpha, each on 0-100.

With ``m = alpha > threshold`` (H x W):

* occupancy ratio = 100 * (pixels of m) / (H * W);
* longest span ratio = 100 * max(bbox height / H, bbox width / W), bbox = tight box of m;
* vertical centre = 100 * (mean row of m + 0.5) / H (0 = top, 100 = bottom);
* horizontal centre = 100 * (mean column of m + 0.5) / W (0 = left, 100 = right).

An empty mask has no placement: :func:`placement_stats` returns ``None`` and the runner counts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

STATS = ("occupancy", "longest_span", "vertical_center", "horizontal_center")


def placement_stats(alpha: torch.Tensor | np.ndarray, threshold: float = 0.5) -> dict[str, float] | None:
    """Occupancy, longest span, vertical and horizontal centre (0-100) of one alpha (H, W) or (1, H, W)."""
    a = alpha.detach().cpu().numpy() if isinstance(alpha, torch.Tensor) else np.asarray(alpha)
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ValueError(f"placement_stats expects one alpha (H, W), got shape {alpha.shape}")
    m = a > threshold
    if not m.any():
        return None
    h, w = m.shape
    rows, cols = np.nonzero(m)
    span = max((rows.max() - rows.min() + 1) / h, (cols.max() - cols.min() + 1) / w)
    return {
        "occupancy": 100.0 * m.sum() / (h * w),
        "longest_span": 100.0 * span,
        "vertical_center": 100.0 * (rows.mean() + 0.5) / h,
        "horizontal_center": 100.0 * (cols.mean() + 0.5) / w,
    }


def summarize(values: Iterable[Mapping[str, float]], keys: Iterable[str] = STATS) -> dict[str, float]:
    """Mean and (population) standard deviation of each statistic: ``{k: mean, k_std: std, 'count': n}``."""
    values = list(values)
    out: dict[str, float] = {"count": len(values)}
    for k in keys:
        x = np.asarray([v[k] for v in values], np.float64)
        out[k] = float(x.mean()) if len(x) else float("nan")
        out[f"{k}_std"] = float(x.std()) if len(x) else float("nan")
    return out
