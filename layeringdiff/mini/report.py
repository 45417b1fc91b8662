"""LayeringDiff-mini reports: VAE reconstruction PSNR, loss curves, the sample figure, stage times.

Everything is drawn with PIL (no plotting library is installed) and written atomically.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from layeringdiff.evaluation.figures import PALETTE, _save

LAYERS = ("composite", "foreground", "background")


def vae_psnr(vae_dir: str | os.PathLike, num: int = 64, size: int = 64, split: str = "test") -> dict:
    """Reconstruction PSNR (dB) of a trained VAE on ``num`` held-out synthetic samples' three layers."""
    from diffusers import AutoencoderKL

    from layeringdiff.data.synthetic import SyntheticLayers
    from layeringdiff.training.vae_module import psnr, reconstruct

    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    data = SyntheticLayers(num, size=size, split=split, kernel_range=(1, 3))
    per_layer: dict[str, list[float]] = {k: [] for k in LAYERS}
    for start in range(0, num, 16):
        samples = [data[i] for i in range(start, min(num, start + 16))]
        for k in LAYERS:
            images = torch.stack([s[k] for s in samples])
            per_layer[k] += psnr(reconstruct(vae, images), images).tolist()
    every = [v for vals in per_layer.values() for v in vals]
    return {
        "psnr_db": sum(every) / len(every),
        **{f"psnr_db_{k}": sum(v) / len(v) for k, v in per_layer.items()},
        "num_images": len(every),
        "split": split,
        "size": size,
        "scaling_factor": float(vae.config.scaling_factor),
    }


def read_metric(csv_path: str | os.PathLike, column: str = "train/loss") -> list[tuple[int, float]]:
    """``(step, value)`` rows of one column of a Lightning CSVLogger ``metrics.csv``."""
    rows = []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get(column) not in (None, ""):
                rows.append((int(row["step"]), float(row[column])))
    if not rows:
        raise ValueError(f"{csv_path}: no values of {column!r}")
    return rows


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], []
    for v in values:
        acc = (acc + [v])[-window:]
        out.append(sum(acc) / len(acc))
    return out


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], name: str, points) -> None:
    """One loss curve in ``box`` (x0, y0, x1, y1): log10 y axis, raw points light, moving average dark."""
    x0, y0, x1, y1 = box
    steps = [s for s, _ in points]
    logs = [math.log10(max(v, 1e-12)) for _, v in points]
    lo, hi = min(logs), max(logs)
    hi = hi if hi > lo else lo + 1.0
    smin, smax = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1
    px0, py0, px1, py1 = x0 + 46, y0 + 18, x1 - 8, y1 - 22
    draw.rectangle([px0, py0, px1, py1], outline=(120, 120, 120))
    draw.text((x0 + 4, y0 + 2), name, fill="black")

    def xy(s, lv):
        return px0 + (s - smin) / (smax - smin) * (px1 - px0), py1 - (lv - lo) / (hi - lo) * (py1 - py0)

    for lv, label_y in ((hi, py0), (lo, py1 - 10)):
        draw.text((x0 + 2, label_y), f"{10**lv:.3g}", fill=(80, 80, 80))
    draw.text((px0, py1 + 4), f"step {smin}", fill=(80, 80, 80))
    draw.text((px1 - 60, py1 + 4), f"step {smax}", fill=(80, 80, 80))
    draw.line([xy(s, lv) for s, lv in zip(steps, logs)], fill=(200, 210, 230), width=1)
    smooth = _smooth(logs, max(1, len(logs) // 10))
    draw.line([xy(s, lv) for s, lv in zip(steps, smooth)], fill=PALETTE[0], width=2)


def loss_plot(
    runs: dict[str, str | os.PathLike], path: str | os.PathLike, column: str = "train/loss"
) -> Path:
    """One panel per run (name -> metrics.csv) of its training loss against the step (log y)."""
    w, h, cols = 320, 200, min(3, len(runs))
    rows = math.ceil(len(runs) / cols)
    img = Image.new("RGB", (w * cols, h * rows + 20), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 4), f"LayeringDiff-mini: {column} (log scale; dark = moving average)", fill="black")
    for i, (name, csv_path) in enumerate(runs.items()):
        r, c = divmod(i, cols)
        _panel(draw, (c * w, 20 + r * h, (c + 1) * w, 20 + (r + 1) * h), name, read_metric(csv_path, column))
    return _save(img, path)


def sample_figure(
    figure_dir: str | os.PathLike, path: str | os.PathLike, num: int = 4, cell: int = 128
) -> Path:
    """composite | true F | mini F | true B | mini B | germer_inpaint B for the first ``num`` samples.

    ``figure_dir`` is a Table 4 run's ``table4_figure/`` folder (``composite/``, ``ground_truth/``,
    ``<method>/`` backgrounds and ``foreground/<ground_truth|method>/``).
    """
    root = Path(figure_dir)
    columns = [
        ("Composite", root / "composite"),
        ("True F", root / "foreground" / "ground_truth"),
        ("Mini F", root / "foreground" / "layeringdiff"),
        ("True B", root / "ground_truth"),
        ("Mini B", root / "layeringdiff"),
        ("germer_inpaint B", root / "germer_inpaint"),
    ]
    keys = sorted(p.stem for p in (root / "composite").glob("*.png"))[:num]
    keys = [k for k in keys if all((d / f"{k}.png").is_file() for _, d in columns)]
    if not keys:
        raise FileNotFoundError(f"{root}: no sample has every figure column ({[str(d) for _, d in columns]})")
    top = 18
    img = Image.new("RGB", (cell * len(columns), top + cell * len(keys)), "white")
    draw = ImageDraw.Draw(img)
    for c, (name, _) in enumerate(columns):
        draw.text((c * cell + 4, 3), name, fill="black")
    for r, key in enumerate(keys):
        for c, (_, folder) in enumerate(columns):
            with Image.open(folder / f"{key}.png") as tile:
                img.paste(tile.convert("RGB").resize((cell, cell), Image.NEAREST), (c * cell, top + r * cell))
    return _save(img, path)


def stage_times(times_dir: str | os.PathLike) -> list[dict]:
    """Per-stage ``{stage, wall_s, user_s, sys_s, load}`` from mini.sh's ``times/<stage>.txt`` files."""
    rows = []
    for f in sorted(Path(times_dir).glob("*.txt")):
        values = dict(line.split("=", 1) for line in f.read_text().split() if "=" in line)
        rows.append({"stage": f.stem, **{k: float(v) for k, v in values.items() if k != "load"}})
        rows[-1]["load"] = values.get("load", "")
    return rows


def write_json(data, path: str | os.PathLike) -> Path:
    from layeringdiff.files import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
    return Path(path)
