"""Box-only foregrounds (issue 14 item 4): IoU of the GrabCut mask against synthetic ground truth.

    .venv/bin/python experiments/bench_box_iou.py [--n 60] [--size 256] [--margin 0.04]

Each synthetic composite (data/synthetic.py, Eq. 1 of its uint8 layers) gets the box of its
ground-truth object (alpha > 0.5) widened by ``margin`` of the side, as a user would draw it;
composites whose box covers over 80% of the image are skipped (GrabCut then has almost no
background to learn from). Old = one GrabCut round on RGB (the path before), new = the default
``grabcut_mask`` (CIELAB, re-seeded rounds); both run in the same process on the same boxes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402


def box_composite(seed: int, size: int, margin: float):
    from layeringdiff.data.synthetic import synthetic_layers

    fg, alpha, bg, _ = synthetic_layers(seed, size)
    a = alpha.astype(np.float32)[..., None] / 255.0
    comp = np.round(a * fg + (1 - a) * bg) / 255.0
    truth = alpha > 127
    ys, xs = np.nonzero(truth)
    m = margin * size
    box = [
        max(0, xs.min() - m),
        max(0, ys.min() - m),
        min(size, xs.max() + 1 + m),
        min(size, ys.max() + 1 + m),
    ]
    return torch.from_numpy(comp).permute(2, 0, 1).float(), truth, box


def main() -> None:
    from layeringdiff.pipeline.boxes import grabcut_mask

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--margin", type=float, default=0.04)
    args = p.parse_args()
    methods = {
        "old: 1 round, RGB": dict(refine_rounds=0, colour_space="rgb"),
        "new: default (CIELAB, re-seeded rounds)": {},
    }
    scores = {k: {"iou": [], "missed": [], "extra": [], "cpu": 0.0} for k in methods}
    seed, used = -1, 0
    while used < args.n:
        seed += 1
        image, truth, box = box_composite(seed, args.size, args.margin)
        if (box[2] - box[0]) * (box[3] - box[1]) > 0.8 * args.size**2:
            continue
        used += 1
        for name, kwargs in methods.items():
            start = time.process_time()
            mask = grabcut_mask(image, box, **kwargs)[0].numpy() > 0.5
            s = scores[name]
            s["cpu"] += time.process_time() - start
            s["iou"].append((mask & truth).sum() / (mask | truth).sum())
            s["missed"].append((truth & ~mask).sum() / truth.sum())
            s["extra"].append((mask & ~truth).sum() / truth.sum())
    print(machine_line())
    print(f"{used} synthetic composites, {args.size}x{args.size}, box margin {args.margin} (seeds 0..{seed})")
    print("| method | mean IoU | median IoU | IoU > 0.9 | missed / object | extra / object | CPU s each |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, s in scores.items():
        iou = np.array(s["iou"])
        print(
            f"| {name} | {iou.mean():.4f} | {np.median(iou):.4f} | {(iou > 0.9).mean():.2f} "
            f"| {np.mean(s['missed']):.3f} | {np.mean(s['extra']):.3f} | {s['cpu'] / used:.3f} |"
        )


if __name__ == "__main__":
    main()
