"""Grouped bar chart of Table 3 (mean score with its interval per method), drawn with PIL."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from layeringdiff.files import atomic_write_bytes
from layeringdiff.study import CRITERIA, RATED_IMAGES
from layeringdiff.study.aggregate import CRITERION_ROWS, LAYER_ROWS

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def bar_chart(
    cells: Sequence[Mapping], methods: Sequence[str], path: str | Path, size: tuple[int, int] = (960, 480)
) -> Path:
    """Draw one group per Table 3 row and one bar per method (error bar = interval); save as PNG.

    Args:
        cells: ``aggregate.summarize`` output.
        methods: bar order (one colour each).
        path: PNG to write (atomically).
        size: (width, height) in pixels.
    """
    width, height = size
    font = ImageFont.load_default(size=13)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 50, 15, 30 + 18 * math.ceil(len(methods) / 4), 50
    plot_w, plot_h = width - left - right, height - top - bottom
    y_of = lambda v: top + plot_h * (1 - v / 5.0)  # noqa: E731

    for v in range(6):
        y = y_of(v)
        draw.line([(left, y), (width - right, y)], fill="#dddddd" if v else "black")
        draw.text((left - 8, y), str(v), fill="black", font=font, anchor="rm")
    draw.line([(left, top), (left, top + plot_h)], fill="black")

    by_key = {(c["layer"], c["criterion"], c["method"]): c for c in cells}
    groups = [(layer, crit) for layer in RATED_IMAGES for crit in CRITERIA]
    group_w = plot_w / len(groups)
    bar_w = group_w * 0.8 / max(len(methods), 1)
    for g, (layer, crit) in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        for m, method in enumerate(methods):
            c = by_key.get((layer, crit, method))
            if not c or not c["n_ratings"]:
                continue
            xa, xb = x0 + m * bar_w, x0 + (m + 1) * bar_w - 2
            draw.rectangle([xa, y_of(c["mean"]), xb, y_of(0)], fill=PALETTE[m % len(PALETTE)])
            if not math.isnan(c["ci_low"]):
                xm = (xa + xb) / 2
                lo, hi = y_of(max(c["ci_low"], 0)), y_of(min(c["ci_high"], 5))
                draw.line([(xm, lo), (xm, hi)], fill="black", width=2)
                draw.line([(xm - 4, lo), (xm + 4, lo)], fill="black", width=2)
                draw.line([(xm - 4, hi), (xm + 4, hi)], fill="black", width=2)
        xc = left + (g + 0.5) * group_w
        draw.text((xc, top + plot_h + 8), LAYER_ROWS[layer], fill="black", font=font, anchor="mt")
        draw.text((xc, top + plot_h + 26), CRITERION_ROWS[crit], fill="black", font=font, anchor="mt")

    for m, method in enumerate(methods):
        x, y = left + (m % 4) * (plot_w / 4), 10 + 18 * (m // 4)
        draw.rectangle([x, y, x + 12, y + 12], fill=PALETTE[m % len(PALETTE)])
        draw.text((x + 18, y + 6), method, fill="black", font=font, anchor="lm")

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
