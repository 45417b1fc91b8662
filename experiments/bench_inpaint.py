"""The classical background's inpainters against each other on the synthetic Table 4 set (issue 14).

    .venv/bin/python experiments/bench_inpaint.py                       # 24 composites, 512 px
    .venv/bin/python experiments/bench_inpaint.py --methods telea,fsr_best_128 --num 4   # FSR best: slow
    .venv/bin/python experiments/bench_inpaint.py --num 100 --alexnet ~/alexnet-owt-7be5be79.pth
    .venv/bin/python experiments/bench_inpaint.py --num 16 --alexnet random      # offline stand-in

For each of the first ``--num`` composites of the Table 4 synthetic test set
(``SyntheticLayers(1000, 512, seed=0, split="test")``) the classical path's Germer et al.
background is computed once from the true alpha, then every inpainter fills its hole
(alpha > 0.95) in the same run, passes alternating per composite. Printed per inpainter: the
background's MAD x1e3 over the whole image (Table 4's measure), MAD x1e3 and gradient error x1e3
inside the hole only (structure continued or not), LPIPS x1e2 (with the real AlexNet weights; or
``--alexnet random``: LPIPS's calibrated heads on a random trunk, the stand-in the offline Table 4
runs use, a perceptual-style distance but not the published metric), and seconds (wall and CPU) per image at 512 px and for one
768 px composite (the classical default size). The CPU model and load average are printed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

INPAINTERS = {
    "telea": {"kind": "telea", "radius": 5},
    "fsr_fast_128": {"kind": "fsr", "variant": "fast", "max_side": 128},
    "fsr_fast_256": {"kind": "fsr", "variant": "fast", "max_side": 256},
    "fsr_best_128": {"kind": "fsr", "variant": "best", "max_side": 128},
}


def gradient_error(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> float:
    """Mean |grad pred - grad target| (x and y finite differences) over the hole's pixels."""
    dx = (pred[:, :, 1:] - pred[:, :, :-1]) - (target[:, :, 1:] - target[:, :, :-1])
    dy = (pred[:, 1:, :] - pred[:, :-1, :]) - (target[:, 1:, :] - target[:, :-1, :])
    mx, my = hole[:, :, 1:] & hole[:, :, :-1], hole[:, 1:, :] & hole[:, :-1, :]
    vals = torch.cat([dx.abs()[mx.expand_as(dx)], dy.abs()[my.expand_as(dy)]])
    return float(vals.mean()) if vals.numel() else 0.0


def score(bg: torch.Tensor, gt: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
    d = (bg - gt).abs()
    inside = d[hole.expand_as(d)]
    return {
        "mad": float(d.mean()) * 1e3,
        "hole_mad": float(inside.mean()) * 1e3 if inside.numel() else 0.0,
        "hole_grad": gradient_error(bg, gt, hole) * 1e3,
    }


def timed(fn, *args):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - start, time.process_time() - cpu


def run(args) -> dict[str, dict[str, float]]:
    from layeringdiff.data.synthetic import SyntheticLayers
    from layeringdiff.pipeline.baselines import germer_foreground_background
    from layeringdiff.pipeline.inpainters import build_inpainter

    names = args.methods.split(",")
    inpainters = {n: build_inpainter(INPAINTERS[n]) for n in names}
    lpips = None
    if args.alexnet:
        from layeringdiff.metrics.lpips_metric import LPIPSMetric

        if args.alexnet == "random":  # Table 4's offline stand-in: calibrated heads on a random trunk
            lpips = LPIPSMetric(allow_random_backbone=True)
        else:
            lpips = LPIPSMetric(alexnet_weights=args.alexnet)
    data = SyntheticLayers(1000, size=args.size, seed=0, split="test")
    rows: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    for i in range(args.num):
        s = data[i]
        _, bg0 = germer_foreground_background(s["composite"], s["alpha"])
        hole = s["alpha"] > 0.95
        for n in names[i % len(names) :] + names[: i % len(names)]:  # alternate who runs first
            bg, wall, cpu = timed(inpainters[n], bg0, hole)
            values = {**score(bg, s["background"], hole), "wall_s": wall, "cpu_s": cpu}
            if lpips is not None:
                values["lpips"] = float(lpips(bg[None], s["background"][None])) * 1e2
            for k, v in values.items():
                rows[n].setdefault(k, []).append(v)
    big = SyntheticLayers(1000, size=768, seed=0, split="test")[0]
    _, bg0 = germer_foreground_background(big["composite"], big["alpha"])
    out = {}
    for n in names:
        _, wall, cpu = timed(inpainters[n], bg0, big["alpha"] > 0.95)
        out[n] = {k: statistics.mean(v) for k, v in rows[n].items()} | {"wall_768": wall, "cpu_768": cpu}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=24, help="composites of the synthetic Table 4 set")
    p.add_argument("--size", type=int, default=512)
    p.add_argument(
        "--methods",
        default="telea,fsr_fast_128,fsr_fast_256",
        help=f"comma-separated of {', '.join(INPAINTERS)}",
    )
    p.add_argument(
        "--alexnet",
        help="torchvision AlexNet weights file, for LPIPS (else LPIPS is not printed); 'random': LPIPS's "
        "calibrated heads on a random AlexNet trunk, as the offline Table 4 runs use (not the published metric)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch / OpenCV threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    print(machine_line({"torch": args.threads, "opencv": args.threads}))
    result = run(args)
    lp = (" LPIPS x1e2 (random trunk) |" if args.alexnet == "random" else " LPIPS x1e2 |") if args.alexnet else ""
    print(f"\n{args.num} composites, {args.size} px, hole = alpha > 0.95, Germer B from the true alpha")
    print(
        f"| inpainter | BG MAD x1e3 | hole MAD x1e3 | hole grad err x1e3 |{lp} s/img (wall / CPU) | 768 px s (wall / CPU) |"
    )
    print("|:---|---:|---:|---:|" + ("---:|" if lp else "") + "---:|---:|")
    for n, r in result.items():
        cells = [f"{r['mad']:.2f}", f"{r['hole_mad']:.2f}", f"{r['hole_grad']:.2f}"]
        cells += [f"{r['lpips']:.2f}"] if lp else []
        cells += [f"{r['wall_s']:.3f} / {r['cpu_s']:.3f}", f"{r['wall_768']:.3f} / {r['cpu_768']:.3f}"]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\n" + machine_line({"torch": args.threads, "opencv": args.threads}))


if __name__ == "__main__":
    main()
