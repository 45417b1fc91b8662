"""Figures drawn with PIL (no plotting library needed): placement histograms, Fig. 6-style grids."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from layeringdiff.files import atomic_write_bytes

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _save(img: Image.Image, path: str | Path) -> Path:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def histograms(
    values: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, bins: int = 20, panel: int = 240
) -> Path:
    """One panel per statistic (0-100 on x), one coloured outline histogram per method.

    Args:
        values: ``{method: {statistic: [values...]}}``.
        path: PNG to write.
    """
    methods = list(values)
    stats = sorted({s for v in values.values() for s in v})
    pad, top = 24, 18
    img = Image.new("RGB", (panel * max(len(stats), 1), panel + top + 14 * len(methods)), "white")
    draw = ImageDraw.Draw(img)
    edges = np.linspace(0, 100, bins + 1)
    for j, stat in enumerate(stats):
        x0 = j * panel
        draw.text((x0 + pad, 2), stat, fill="black")
        counts = {m: np.histogram(np.clip(values[m].get(stat, []), 0, 100), edges)[0] for m in methods}
        fracs = {m: c / max(c.sum(), 1) for m, c in counts.items()}
        peak = max([f.max() for f in fracs.values()] + [1e-9])
        w, h = panel - 2 * pad, panel - pad - top
        draw.rectangle([x0 + pad, top, x0 + pad + w, top + h], outline="gray")
        for i, m in enumerate(methods):
            pts = []
            for b, f in enumerate(fracs[m]):
                y = top + h - f / peak * h
                pts += [(x0 + pad + b * w / bins, y), (x0 + pad + (b + 1) * w / bins, y)]
            draw.line(pts, fill=PALETTE[i % len(PALETTE)], width=2)
        draw.text((x0 + pad, top + h + 2), "0", fill="black")
        draw.text((x0 + pad + w - 18, top + h + 2), "100", fill="black")
    for i, m in enumerate(methods):
        y = panel + top - 4 + 14 * i
        draw.line([(pad, y + 6), (pad + 16, y + 6)], fill=PALETTE[i % len(PALETTE)], width=2)
        draw.text((pad + 20, y), m, fill=PALETTE[i % len(PALETTE)])
    return _save(img, path)


def image_grid(
    rows: Sequence[Sequence[Image.Image]], headers: Sequence[str], path: str | Path, cell: int = 160
) -> Path:
    """A grid of images (rows x columns) with column headers, e.g. composite | GT B | each method's B."""
    ncol = max(len(r) for r in rows) if rows else len(headers)
    top = 16
    img = Image.new("RGB", (cell * ncol, top + cell * len(rows)), "white")
    draw = ImageDraw.Draw(img)
    for c, name in enumerate(headers):
        draw.text((c * cell + 4, 2), name[: cell // 7], fill="black")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            img.paste(im.convert("RGB").resize((cell, cell), Image.BICUBIC), (c * cell, top + r * cell))
    return _save(img, path)


def checkerboard(size: tuple[int, int], square: int = 8) -> Image.Image:
    """Grey checkerboard to show RGBA layers on."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    v = np.where(((yy // square) + (xx // square)) % 2 == 0, 204, 153).astype(np.uint8)
    return Image.fromarray(np.stack([v] * 3, -1), "RGB")
