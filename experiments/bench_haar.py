"""Benchmark: torch haar_highfreq_loss forward+backward vs a per-image pywt loop, same run.

    .venv/bin/python experiments/bench_haar.py            # 8x3x512x512, 3 levels, CPU, 1 thread each
    .venv/bin/python experiments/bench_haar.py --size 256 --repeats 3

Both run float32 (``--pywt-dtype float64`` times pywt in double precision, which is slower).
The pywt baseline computes the same loss and its gradient with respect to ``pred``: forward with
``pywt.wavedec2`` per image (channels along axis 0), backward with ``pywt.waverec2`` of the
scaled coefficient differences (the Haar transform is orthogonal, so its adjoint is its inverse).
Both gradients are compared before timing.

It also times one BAN training step at 512 px in the same run (the default HFANet, random init:
forward, MSE + 0.2 L_H, backward, AdamW step) and L_H's forward+backward at the same batch on the same
device, and prints L_H's share of the step (target: <= 5%, the alternative to >= 20x over pywt).
Every figure comes with the CPU model, threads and load average (experiments/_machine.py).

    .venv/bin/python experiments/bench_haar.py --ban-batch 1 --ban-steps 2      # CPU: ~1 min
    .venv/bin/python experiments/bench_haar.py --device cuda --ban-batch 8        # one GPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pywt
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

from layeringdiff.networks.haar import haar_highfreq_loss  # noqa: E402
from layeringdiff.networks.hfa import HFANet  # noqa: E402


def pywt_loss_and_grad(pred: np.ndarray, target: np.ndarray, levels: int) -> tuple[float, np.ndarray]:
    """L_H and dL_H/dpred with a Python loop over images, pywt doing the transforms."""
    b, c = pred.shape[:2]
    loss, grad = 0.0, np.empty_like(pred)
    for i in range(b):
        cp = pywt.wavedec2(pred[i], "haar", level=levels, axes=(-2, -1))
        ct = pywt.wavedec2(target[i], "haar", level=levels, axes=(-2, -1))
        coeffs_grad = [np.zeros_like(cp[0])]
        for dp, dt in zip(cp[1:], ct[1:]):
            bands = []
            for p, t in zip(dp, dt):
                n = b * c * p.shape[-2] * p.shape[-1]  # mean over batch, channel, positions
                diff = p - t
                loss += float(np.sum(diff * diff)) / n
                bands.append(2.0 * diff / n)
            coeffs_grad.append(tuple(bands))
        grad[i] = pywt.waverec2(coeffs_grad, "haar", axes=(-2, -1))
    return loss, grad


def torch_loss_and_grad(pred: torch.Tensor, target: torch.Tensor, levels: int) -> tuple[float, torch.Tensor]:
    pred = pred.detach().requires_grad_(True)
    loss = haar_highfreq_loss(pred, target, levels)
    loss.backward()
    return loss.item(), pred.grad


def best_times(fns: dict, rounds: int, repeats: int) -> dict:
    """Best wall and CPU time of each function. Rounds alternate between the functions so a busy
    machine slows all alike; within a round one function repeats, so its memory allocations
    reach the steady state a training loop sees (fresh 25 MB buffers page-fault)."""
    best = {name: [float("inf"), float("inf")] for name in fns}  # wall, process CPU
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    return best


def ban_step_share(batch: int, size: int, levels: int, steps: int, device: str) -> tuple[float, float]:
    """Best wall seconds of (one BAN training step, L_H forward+backward alone), interleaved."""
    torch.manual_seed(0)
    net = HFANet(layer="background").to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4)
    c, b_gt, b_hat = (torch.rand(batch, 3, size, size, device=device) for _ in range(3))
    alpha = torch.rand(batch, 1, size, size, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step() -> None:
        refined = net(c, alpha, b_hat)
        loss = F.mse_loss(refined, b_gt) + 0.2 * haar_highfreq_loss(refined, b_hat, levels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    pred = torch.rand(batch, 3, size, size, device=device)

    def haar_only() -> None:
        p = pred.detach().requires_grad_(True)
        haar_highfreq_loss(p, b_hat, levels).backward()

    best = {"step": float("inf"), "haar": float("inf")}
    step(), haar_only()  # warm-up
    for _ in range(steps):
        for name, fn in (("step", step), ("haar", haar_only), ("haar", haar_only)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best["step"], best["haar"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pywt-dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (pywt runs on one)")
    parser.add_argument("--ban-batch", type=int, default=1, help="batch of the BAN step (0: skip it)")
    parser.add_argument("--ban-size", type=int, default=512)
    parser.add_argument("--ban-steps", type=int, default=2, help="timed BAN steps (best counts)")
    parser.add_argument("--device", default="cpu", help="device of the BAN step and its L_H")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line({"torch": args.threads}))

    g = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    pred, target = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    # Correctness against pywt in float64; the timed baseline runs pywt in float32 like torch.
    loss_t, grad_t = torch_loss_and_grad(pred, target, args.levels)
    loss_p, grad_p = pywt_loss_and_grad(pred.double().numpy(), target.double().numpy(), args.levels)
    grad_err = np.abs(grad_t.double().numpy() - grad_p).max() / np.abs(grad_p).max()
    assert abs(loss_t - loss_p) <= 1e-5 * abs(loss_p), (loss_t, loss_p)
    assert grad_err < 1e-5, grad_err
    pred_np, target_np = pred.numpy().astype(args.pywt_dtype), target.numpy().astype(args.pywt_dtype)

    best = best_times(
        {
            "torch": lambda: torch_loss_and_grad(pred, target, args.levels),
            "pywt": lambda: pywt_loss_and_grad(pred_np, target_np, args.levels),
        },
        args.rounds,
        args.repeats,
    )
    (t_torch, c_torch), (t_pywt, c_pywt) = best["torch"], best["pywt"]
    print(
        f"shape {shape}, levels {args.levels}, torch threads {args.threads}, best of {args.rounds}x{args.repeats}"
    )
    print(f"loss torch {loss_t:.6f}  pywt float64 {loss_p:.6f}  max gradient error {grad_err:.1e} (relative)")
    print(f"torch haar_highfreq_loss fwd+bwd:   wall {t_torch * 1e3:7.1f} ms  CPU {c_torch * 1e3:7.1f} ms")
    print(f"pywt per-image loop ({args.pywt_dtype}): wall {t_pywt * 1e3:7.1f} ms  CPU {c_pywt * 1e3:7.1f} ms")
    print(f"speed-up: wall {t_pywt / t_torch:.1f}x, CPU time {c_pywt / c_torch:.1f}x (target >= 20x)")
    if args.ban_batch > 0:
        t_step, t_haar = ban_step_share(
            args.ban_batch, args.ban_size, args.levels, args.ban_steps, args.device
        )
        share = t_haar / t_step
        print(
            f"BAN training step {args.ban_batch}x3x{args.ban_size}x{args.ban_size} on {args.device} "
            f"(HFANet, MSE + 0.2 L_H, AdamW): {t_step * 1e3:.1f} ms; L_H fwd+bwd in it: {t_haar * 1e3:.2f} ms "
            f"= {100 * share:.2f}% of the step (target <= 5%: {'met' if share <= 0.05 else 'NOT met'})"
        )
    print(machine_line({"torch": args.threads}))


if __name__ == "__main__":
    main()
