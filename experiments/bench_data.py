"""Data throughput at 512x512, in composites per second per core, each beside a plain PIL baseline.

    python experiments/bench_data.py                # writes its inputs under /tmp, then measures
    python experiments/bench_data.py --num-fg 100 --num-shard 1000 --workdir /scratch/bench

(a) on the fly: ``FolderComposites`` over generator-written MAGICK-style 1024x1024 RGBA PNGs and
BG-20k-style 1-2 MP JPEGs; baseline: PIL open / convert / resize (bicubic) / crop + numpy float
composite + the same trimap. (b) shards: ``ShardDataset`` over 512x512 shards; baseline: the tar
members read with ``tarfile`` and decoded with PIL + numpy composite + the stored trimap.

Everything runs in this one process with one thread (OpenCV, torch), so a rate is per core. Both
wall-clock and CPU-time rates are printed: on a shared machine the CPU-time rate (samples per
CPU-second of this process) is the fairer per-core figure. Targets: shards >= 100/s/core, on the
fly >= 12/s/core.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from layeringdiff.compositing import trimap_from_alpha
from layeringdiff.data.folders import FolderComposites
from layeringdiff.data.shard_writer import write_shards
from layeringdiff.data.shards import ShardDataset
from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.data.synthetic_folders import write_bg20k_folder, write_magick_folder

SIZE = 512
ALL = {"train": 1.0, "val": 0.0, "test": 0.0}


def timed(fn, n: int, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` (wall rate, CPU rate) of ``fn(i)`` over ``n`` items."""
    fn(0)  # warm-up: imports, page cache
    best_wall, best_cpu = 0.0, 0.0
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        best_wall, best_cpu = max(best_wall, n / wall), max(best_cpu, n / max(cpu, 1e-9))
    return best_wall, best_cpu


def pil_resize_crop(img: Image.Image) -> Image.Image:
    w, h = img.size
    s = SIZE / min(w, h)
    nw, nh = max(SIZE, round(w * s)), max(SIZE, round(h * s))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - SIZE) // 2, (nh - SIZE) // 2
    return img.crop((left, top, left + SIZE, top + SIZE))


def pil_folder_sample(fg_path: Path, bg_path: Path) -> dict:
    fg = pil_resize_crop(Image.open(fg_path).convert("RGBA"))
    bg = pil_resize_crop(Image.open(bg_path).convert("RGB"))
    rgba = np.asarray(fg, np.float32) / 255.0
    f, a, b = rgba[..., :3], rgba[..., 3:], np.asarray(bg, np.float32) / 255.0
    alpha = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    return {"composite": a * f + (1 - a) * b, "trimap": trimap_from_alpha(alpha, 10, 10)}


def pil_shard_records(tar_paths: list[Path]) -> list[dict]:
    records: dict[str, dict] = {}
    for path in tar_paths:
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                records.setdefault(f"{path}/{key}", {})[ext] = tar.extractfile(m).read()
    return list(records.values())


def pil_shard_sample(rec: dict) -> dict:
    def img(name: str, mode: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(rec[name])).convert(mode), np.float32) / 255.0

    f, b, a = img("foreground.png", "RGB"), img("background.png", "RGB"), img("alpha.png", "L")[..., None]
    json.loads(rec["json"])
    return {"composite": a * f + (1 - a) * b, "trimap": img("trimap.png", "L")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/layeringdiff_bench_data"))
    ap.add_argument("--num-fg", type=int, default=40)
    ap.add_argument("--num-bg", type=int, default=40)
    ap.add_argument("--num-shard", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    fg_root = write_magick_folder(args.workdir / "MAGICK", args.num_fg, size=1024, seed=0)
    bg_root = write_bg20k_folder(args.workdir / "BG-20k", args.num_bg, seed=0, testval_fraction=0.0)
    shard_src = SyntheticLayers(args.num_shard, size=SIZE, seed=0)
    results = {}
    for fmt in ("png", "npy"):
        write_shards(
            shard_src, args.workdir / f"shards_{fmt}", "train", samples_per_shard=100, image_format=fmt
        )
    print(f"inputs ready in {time.perf_counter() - t0:.1f} s under {args.workdir}")

    # (a) on the fly from folders
    folders = FolderComposites(fg_root, bg_root, split="train", size=SIZE, seed=0, fractions=ALL)
    n = len(folders)
    pairs = [folders.pair(i) for i in range(n)]
    results["folders"] = timed(lambda i: folders[i], n, args.repeat)
    results["folders_pil"] = timed(
        lambda i: pil_folder_sample(pairs[i][1].path, pairs[i][2].path), n, args.repeat
    )

    # (b) from shards (the reader streams; time whole passes)
    for fmt in ("png", "npy"):
        ds = ShardDataset(args.workdir / f"shards_{fmt}", "train", size=SIZE, shuffle_buffer=0)
        m = len(ds)
        results[f"shards_{fmt}"] = _stream_rate(ds, m, args.repeat)
    tars = sorted((args.workdir / "shards_png" / "train").glob("*.tar"))

    def pil_pass() -> int:
        recs = pil_shard_records(tars)
        for r in recs:
            pil_shard_sample(r)
        return len(recs)

    results["shards_pil"] = _pass_rate(pil_pass, args.repeat)

    print(f"\ncomposites/s per core at {SIZE}x{SIZE} (1 thread; best of {args.repeat}; wall | CPU-time)")
    rows = [
        ("(a) on the fly, folders (1024 RGBA PNG + 1-2 MP JPEG)", "folders", 12),
        ("    plain PIL baseline, same files", "folders_pil", None),
        ("(b) shards, PNG layers", "shards_png", 100),
        ("    shards, raw .npy layers", "shards_npy", 100),
        ("    plain PIL baseline, same PNG shards", "shards_pil", None),
    ]
    for label, key, target in rows:
        wall, cpu = results[key]
        mark = (
            ""
            if target is None
            else f"   target >= {target}: {'met' if cpu >= target else 'NOT met'} (CPU-time)"
        )
        print(f"{label:58s} {wall:7.1f} | {cpu:7.1f}{mark}")
    print(f"\nratio ours / PIL (CPU-time): folders {results['folders'][1] / results['folders_pil'][1]:.2f}x, "
          f"shards {results['shards_png'][1] / results['shards_pil'][1]:.2f}x")  # fmt: skip


def _stream_rate(ds: ShardDataset, m: int, repeat: int) -> tuple[float, float]:
    def one_pass() -> int:
        return sum(1 for _ in ds)

    return _pass_rate(one_pass, repeat)


def _pass_rate(one_pass, repeat: int) -> tuple[float, float]:
    one_pass()
    best_wall, best_cpu = 0.0, 0.0
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        count = one_pass()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        best_wall, best_cpu = max(best_wall, count / wall), max(best_cpu, count / max(cpu, 1e-9))
    return best_wall, best_cpu


if __name__ == "__main__":
    main()
