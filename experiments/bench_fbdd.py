"""FBDD training throughput (images/s) and peak memory, with/without the latent cache and
gradient checkpointing, for several batch sizes.

On a GPU it builds the real SD2-inpainting architecture (random init, no weights needed), bf16
autocast, SDPA attention, AdamW; peak memory = ``torch.cuda.max_memory_allocated``. On a CPU it
uses the tiny random SD2 repo (layeringdiff/tiny/sd2.py) in fp32 and runs every configuration in
a fresh process; peak memory = that process's peak RSS above its RSS once model and batch are
built (Linux ``/proc/self/status``). Ratios are
against the no-cache, no-checkpointing row of the same batch size measured in the same run.
images/CPU-s (process CPU time instead of wall time) is the steadier figure on a shared CPU.

    python experiments/bench_fbdd.py                                   # CPU: tiny, 64 px
    python experiments/bench_fbdd.py --arch real --size 512 --batch-sizes 4 8 16   # one GPU
    python experiments/bench_fbdd.py --ddp 2 --batch-sizes 2     # CPU: 2 gloo processes vs 1 process
    python experiments/bench_fbdd.py --ddp 8 --arch real --size 512 --batch-sizes 8   # 8 GPUs, NCCL
DDP mode: N processes (gloo on CPU, NCCL on GPUs), each with the given per-process batch, the
UNet wrapped in DistributedDataParallel; images/s is N x batch x steps / the slowest rank's time,
printed beside the 1-process figure of the same run (measured before and after, averaged) and the
scaling efficiency (DDP images/s / (N x 1-process images/s)).
Targets (one H100, real architecture, 512 px): >= 40 images/s with cached latents; batch 8 with
gradient checkpointing under 24 GiB peak.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import re
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

from layeringdiff.networks.fbdd import FBDD  # noqa: E402
from layeringdiff.networks.sd2 import SD2_INPAINTING_UNET_CONFIG, SD2_SCHEDULER_CONFIG, SD2_VAE_CONFIG  # noqa: E402
from layeringdiff.training.fbdd_module import FBDDModule  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=("tiny", "real"), default="real" if cuda else "tiny")
    p.add_argument("--size", type=int, default=512 if cuda else 64, help="image size (px)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--steps", type=int, default=10 if cuda else 5, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3 if cuda else 1)
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16" if cuda else "fp32")
    p.add_argument("--tiny-dir", default=None, help="where to build the tiny repo (default: a temp dir)")
    p.add_argument(
        "--threads",
        type=int,
        default=None if cuda else 1,
        help="CPU threads (1 on CPU: steady on a shared machine)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="CPU: run all configurations in this process (peak memory then not per configuration)",
    )
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--ddp", type=int, default=0, help="N > 1: data-parallel mode with N processes")
    return p.parse_args(argv)


def build_fbdd(arch: str, tiny_dir: str | None) -> FBDD:
    if arch == "real":
        return FBDD.from_config(SD2_INPAINTING_UNET_CONFIG, SD2_VAE_CONFIG, SD2_SCHEDULER_CONFIG)
    from layeringdiff.tiny import sd2

    root = sd2.build(Path(tiny_dir or tempfile.mkdtemp(prefix="bench_fbdd_")) / "sd2_inpainting")
    return FBDD.from_sd2_inpainting(root, "foreground")


def make_batch(fbdd: FBDD, batch: int, size: int, cached: bool, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    alpha = torch.rand(batch, 1, size, size, generator=g)
    out = {"alpha": alpha}
    if cached:
        lat = (batch, fbdd.latent_channels, size // fbdd.vae_factor, size // fbdd.vae_factor)
        out["latent_composite"], out["latent_foreground"] = (
            torch.randn(lat, generator=g),
            torch.randn(lat, generator=g),
        )
    else:
        out["composite"], out["foreground"] = (
            torch.rand(batch, 3, size, size, generator=g),
            torch.rand(batch, 3, size, size, generator=g),
        )
    return {k: v.to(device) for k, v in out.items()}


def _proc_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def reset_peak(device: str) -> int:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
    return _proc_kib("VmRSS") * 1024


def peak_bytes(device: str, baseline: int) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return _proc_kib("VmHWM") * 1024 - baseline


def run_config(fbdd: FBDD, args, batch: int, cached: bool, checkpointing: bool) -> dict:
    if checkpointing:
        fbdd.unet.enable_gradient_checkpointing()
    else:
        fbdd.unet.disable_gradient_checkpointing()
    module = FBDDModule("unused", fbdd=fbdd)
    data = make_batch(fbdd, batch, args.size, cached, args.device)
    baseline = reset_peak(args.device)
    opt = torch.optim.AdamW(fbdd.unet.parameters(), lr=1e-6)
    autocast = (
        torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16)
        if args.precision == "bf16"
        else nullcontext()
    )
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
        with autocast:
            loss = module.loss(data, i)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    row = {
        "batch": batch,
        "latent_cache": cached,
        "grad_ckpt": checkpointing,
        "images_per_s": batch * args.steps / elapsed,
        "images_per_cpu_s": batch * args.steps / cpu,
        "peak_gib": peak_bytes(args.device, baseline) / 2**30,
    }
    del opt, module, data
    fbdd.unet.zero_grad(set_to_none=True)
    return row


def _fresh_model(args) -> FBDD:
    torch.manual_seed(0)
    fbdd = build_fbdd(args.arch, args.tiny_dir).to(args.device)
    return fbdd.train()


def _isolated(args, batch: int, cached: bool, ckpt: bool) -> dict:
    """One configuration in this (fresh) process: CPU peak RSS is per process and never shrinks."""
    torch.set_num_threads(args.threads)
    return run_config(_fresh_model(args), args, batch, cached, ckpt)


class _Loss(torch.nn.Module):
    """DistributedDataParallel wraps a module whose forward is the training loss."""

    def __init__(self, module: FBDDModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: dict, step: int) -> torch.Tensor:
        return self.module.loss(batch, step)


def _ddp_worker(rank: int, world: int, port: int, args, batch: int, queue) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    cuda = args.device.startswith("cuda")
    torch.set_num_threads(args.threads)
    dist.init_process_group(
        "nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    device = f"cuda:{rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(rank)
    torch.manual_seed(0)
    fbdd = build_fbdd(args.arch, args.tiny_dir).to(device).train()
    model = DistributedDataParallel(
        _Loss(FBDDModule("unused", fbdd=fbdd)), device_ids=[rank] if cuda else None
    )
    data = make_batch(fbdd, batch, args.size, False, device)
    opt = torch.optim.AdamW(fbdd.unet.parameters(), lr=1e-6)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            if cuda:
                torch.cuda.synchronize()
            dist.barrier()
            start = time.perf_counter()
        with autocast:
            loss = model(data, i)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    queue.put((rank, elapsed))
    dist.destroy_process_group()


def ddp_images_per_s(args, batch: int) -> float:
    """Images/s of ``args.ddp`` data-parallel processes (the slowest rank's time)."""
    import socket

    ctx = multiprocessing.get_context("spawn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_ddp_worker, args=(r, args.ddp, port, args, batch, queue)) for r in range(args.ddp)
    ]
    for proc in procs:
        proc.start()
    times = [queue.get(timeout=3600)[1] for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise RuntimeError(f"a DDP benchmark process exited with status {proc.exitcode}")
    return args.ddp * batch * args.steps / max(times)


def ddp_main(args) -> list[dict]:
    """``--ddp N``: N-process images/s against the 1-process figure measured in the same run."""
    if args.arch == "tiny":
        from layeringdiff.tiny import sd2

        sd2.build(Path(args.tiny_dir) / "sd2_inpainting")  # once, before the processes read it
    pool = multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1)
    print(
        f"# FBDD data-parallel benchmark: {args.ddp} processes, {args.arch}, {args.size}px, {args.precision}"
    )
    print(machine_line({"torch per process": args.threads}))
    print("| batch / process | 1 process images/s | DDP images/s | speed-up | efficiency |")
    print("|---|---|---|---|---|")
    rows = []
    for batch in args.batch_sizes:
        before = pool.apply(_isolated, (args, batch, False, False))["images_per_s"]
        ddp = ddp_images_per_s(args, batch)
        after = pool.apply(_isolated, (args, batch, False, False))["images_per_s"]
        single = (before + after) / 2
        row = {"batch": batch, "processes": args.ddp, "single_images_per_s": single, "ddp_images_per_s": ddp}
        row.update(speedup=ddp / single, efficiency=ddp / (args.ddp * single))
        rows.append(row)
        print(
            f"| {batch} | {single:.2f} | {ddp:.2f} | {row['speedup']:.2f} | {row['efficiency']:.2f} |",
            flush=True,
        )
    pool.close()
    print(machine_line({"torch per process": args.threads}))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return rows


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    on_cpu = not args.device.startswith("cuda")
    if on_cpu and args.tiny_dir is None:
        args.tiny_dir = tempfile.mkdtemp(prefix="bench_fbdd_")
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    if args.ddp > 1:
        if args.tiny_dir is None:
            args.tiny_dir = tempfile.mkdtemp(prefix="bench_fbdd_")
        return ddp_main(args)
    isolate = on_cpu and not args.in_process
    fbdd = None if isolate else _fresh_model(args)
    pool = multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) if isolate else None
    device_name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"# FBDD training benchmark: {args.arch} architecture, {args.size}x{args.size}, {args.precision}, {device_name}"
    )
    print(machine_line({"torch": args.threads}))
    print(
        "| batch | latent cache | grad ckpt | images/s | x vs plain | images/CPU-s | x vs plain | peak GiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for batch in args.batch_sizes:
        plain = plain_cpu = None
        for cached in (False, True):
            for ckpt in (False, True):
                if pool is not None:
                    row = pool.apply(_isolated, (args, batch, cached, ckpt))
                else:
                    row = run_config(fbdd, args, batch, cached, ckpt)
                plain, plain_cpu = plain or row["images_per_s"], plain_cpu or row["images_per_cpu_s"]
                row["ratio_vs_plain"] = row["images_per_s"] / plain
                row["cpu_ratio_vs_plain"] = row["images_per_cpu_s"] / plain_cpu
                rows.append(row)
                print(
                    f"| {batch} | {'yes' if cached else 'no'} | {'yes' if ckpt else 'no'} | {row['images_per_s']:.2f} "
                    f"| {row['ratio_vs_plain']:.2f} | {row['images_per_cpu_s']:.2f} | {row['cpu_ratio_vs_plain']:.2f} "
                    f"| {row['peak_gib']:.3f} |",
                    flush=True,
                )
    if pool is not None:
        pool.close()
    print(machine_line({"torch": args.threads}))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "device": device_name, "rows": rows}, indent=2)
        )
    return rows


if __name__ == "__main__":
    main()
