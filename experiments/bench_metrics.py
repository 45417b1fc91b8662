"""Benchmark: Table 4 metric computation (MAD/MSE/SAD + LPIPS of F and B) at 512x512 on CPU.

    python experiments/bench_metrics.py                  # 1,000 composites, 2 threads
    python experiments/bench_metrics.py --num 100        # quicker estimate

Model inference is excluded: predictions and ground truth are prepared tensors (a pool of
synthetic layers, cycled). Two paths are timed on the same inputs: the per-sample path that
``eval=table4`` runs (``score_layers`` on one composite at a time) and a batched path
(``layer_errors_batch`` + LPIPS on batches). LPIPS uses the real AlexNet trunk when its file is
present, else a random trunk (``pnet_rand``; same cost). Target: <= 120 s per 1,000 composites.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402


def make_pool(n: int, size: int) -> list[dict]:
    from layeringdiff.data.synthetic import SyntheticLayers

    data = SyntheticLayers(n, size=size, seed=0, split="test")
    pool = []
    for i in range(n):
        s = data[i]
        noise = torch.rand(3, size, size, generator=torch.Generator().manual_seed(i)) * 0.1
        pred = {
            "foreground": (s["foreground"] + noise).clamp(0, 1),
            "background": (s["background"] - noise).clamp(0, 1),
        }
        pool.append({"sample": s, "pred": pred})
    return pool


def layout_speedup(lpips, images: torch.Tensor, repeats: int = 5) -> None:
    """Baseline in the same run: the AlexNet trunk in NCHW (contiguous) vs NHWC (channels-last, ours)."""
    trunk = lpips.net.net
    times = {}
    for name, fmt in (("NCHW", torch.contiguous_format), ("NHWC", torch.channels_last)):
        trunk.to(memory_format=fmt)
        x = lpips.net.scaling_layer(images * 2 - 1).contiguous(memory_format=fmt)
        with torch.inference_mode():
            trunk(x)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                trunk(x)
                best = min(best, time.perf_counter() - start)
        times[name] = best
    trunk.to(memory_format=torch.channels_last)
    print(
        f"AlexNet trunk, {images.shape[0]} images {images.shape[-1]}px: NCHW {times['NCHW'] * 1e3:.1f} ms, "
        f"NHWC {times['NHWC'] * 1e3:.1f} ms -> channels-last speed-up {times['NCHW'] / times['NHWC']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--skip-per-sample", action="store_true")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="LPIPS trunk precision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from layeringdiff.evaluation.table4 import score_layers
    from layeringdiff.metrics.layer_errors import layer_errors_batch
    from layeringdiff.metrics.lpips_metric import LPIPSMetric

    pool = make_pool(args.pool, args.size)
    lpips = LPIPSMetric(allow_random_backbone=True, batch_size=args.batch, precision=args.precision)
    trunk = "random (pnet_rand)" if lpips.random_backbone else "ImageNet AlexNet"
    print(f"LPIPS trunk: {trunk}, {args.precision}; threads={args.threads}")
    if args.precision != "fp32":
        exact = LPIPSMetric(allow_random_backbone=True)
        exact.load_state_dict(lpips.state_dict())
        p = torch.stack([it["pred"]["background"] for it in pool])
        t = torch.stack([it["sample"]["background"] for it in pool])
        a, b = lpips(p, t), exact(p, t)
        print(
            f"LPIPS {args.precision} vs fp32 on {len(pool)} pairs: max relative deviation {float(((a - b).abs() / b).max()):.4f}"
        )
    score_layers(pool[0]["pred"], pool[0]["sample"], lpips)  # warm-up
    layout_speedup(lpips, torch.stack([it["sample"]["background"] for it in pool[:2]]))

    print(
        f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other processes slow the timing)"
    )
    results, cpu = {}, {}
    if not args.skip_per_sample:
        cpu0 = time.process_time()
        start = time.perf_counter()
        for i in range(args.num):
            item = pool[i % len(pool)]
            score_layers(item["pred"], item["sample"], lpips)
        results["per-sample, 1 method (eval=table4 path, F+B in one LPIPS batch)"] = (
            time.perf_counter() - start
        )
        cpu["per-sample, 1 method (eval=table4 path, F+B in one LPIPS batch)"] = time.process_time() - cpu0
        # With M methods the runner computes the ground truth's LPIPS features once per composite.
        gt = [
            lpips.features(torch.stack([it["sample"]["foreground"], it["sample"]["background"]]))
            for it in pool
        ]
        cpu0 = time.process_time()
        start = time.perf_counter()
        for i in range(args.num):
            item = pool[i % len(pool)]
            score_layers(item["pred"], item["sample"], lpips, target_features=gt[i % len(pool)])
        name = "per-sample, ground-truth features shared (cost per extra method)"
        results[name], cpu[name] = time.perf_counter() - start, time.process_time() - cpu0

    cpu0 = time.process_time()
    start = time.perf_counter()
    for i in range(0, args.num, args.batch):
        items = [pool[j % len(pool)] for j in range(i, min(i + args.batch, args.num))]
        for layer in ("foreground", "background"):
            pred = torch.stack([it["pred"][layer] for it in items])
            target = torch.stack([it["sample"][layer] for it in items])
            layer_errors_batch(pred, target)
            lpips(pred, target)
    results[f"batched (batch {args.batch})"] = time.perf_counter() - start
    cpu[f"batched (batch {args.batch})"] = time.process_time() - cpu0

    for name, seconds in results.items():
        per_1000 = seconds / args.num * 1000
        print(
            f"{name}: {seconds:.1f} s for {args.num} composites at {args.size}x{args.size} "
            f"-> {per_1000:.1f} s per 1,000 (target 120 s: {'OK' if per_1000 <= 120 else 'MISSED'}); "
            f"CPU time {cpu[name] / args.num * 1000:.1f} s per 1,000 ({args.threads} threads)"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(machine_line({"torch": args.threads}))


if __name__ == "__main__":
    main()
