"""Data throughput at 512x512 per core, each reader beside a plain PIL baseline timed in the same run.

    python experiments/bench_data.py                # writes its inputs under /tmp, then measures
    python experiments/bench_data.py --num-fg 100 --num-shard 1000 --workdir /scratch/bench

(a) on the fly: ``FolderComposites`` over generator-written MAGICK-style 1024x1024 RGBA PNGs and
BG-20k-style 1-2 MP JPEGs; baseline: PIL open / convert / resize (bicubic) / crop + numpy float
composite + the same trimap. (b) shards: ``ShardDataset`` over 512x512 shards in each layer codec;
baseline: the PNG shards' tar members read with ``tarfile`` and decoded with PIL + numpy composite
+ the stored trimap. (c) the FBDD latent cache: 4x64x64 latents of C, F and B per sample (what
FBDD training at 512 px reads instead of images), read back in latents/s.

Everything runs in this one process with one thread (OpenCV, torch), so a rate is per core. The
passes alternate (ours, baseline, ours, ...) and the best of ``--rounds`` counts, so a change in
the machine's load hits both sides; the ratio ours / baseline is the figure that holds across
machines. Rates are printed per wall second and per CPU second of this process
(``time.process_time``; the fairer per-core figure on a shared machine), with the CPU model, thread
count and load average. From the CPU-time rates: how many cores one GPU at ``--gpu-rate`` images/s
(90: FBDD on one H100) needs for each input path. Targets: on the fly >= 1.5x its baseline, shards
>= 2x theirs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import interleaved_best, machine_line  # noqa: E402

from layeringdiff.compositing import trimap_from_alpha  # noqa: E402
from layeringdiff.data.folders import FolderComposites  # noqa: E402
from layeringdiff.data.shard_writer import write_shards  # noqa: E402
from layeringdiff.data.shards import ShardDataset  # noqa: E402
from layeringdiff.data.sidecar import load_sidecar, save_sidecar  # noqa: E402
from layeringdiff.data.synthetic import SyntheticLayers  # noqa: E402
from layeringdiff.data.synthetic_folders import write_bg20k_folder, write_magick_folder  # noqa: E402

SIZE = 512
ALL = {"train": 1.0, "val": 0.0, "test": 0.0}
LATENT_SHAPE = (4, SIZE // 8, SIZE // 8)


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


def folder_passes(args) -> dict:
    """(a) one pass over the folder composites, ours and the PIL baseline."""
    fg_root = write_magick_folder(args.workdir / "MAGICK", args.num_fg, size=1024, seed=0)
    bg_root = write_bg20k_folder(args.workdir / "BG-20k", args.num_bg, seed=0, testval_fraction=0.0)
    folders = FolderComposites(fg_root, bg_root, split="train", size=SIZE, seed=0, fractions=ALL)
    n = len(folders)
    pairs = [folders.pair(i) for i in range(n)]

    def ours() -> int:
        return sum(1 for i in range(n) if folders[i] is not None)

    def pil() -> int:
        return sum(1 for _, fg, bg, _ in pairs if pil_folder_sample(fg.path, bg.path) is not None)

    return {"folders": ours, "folders_pil": pil}


def shard_passes(args) -> dict:
    """(b) one streaming pass over the shards of each codec, and the PIL baseline over the PNG shards."""
    src = SyntheticLayers(args.num_shard, size=SIZE, seed=0)
    passes = {}
    for fmt in args.formats:
        root = args.workdir / f"shards_{fmt}"
        write_shards(src, root, "train", samples_per_shard=100, image_format=fmt)
        ds = ShardDataset(root, "train", size=SIZE, shuffle_buffer=0)
        passes[f"shards_{fmt}"] = lambda ds=ds: sum(1 for _ in ds)
    tars = sorted((args.workdir / "shards_png" / "train").glob("*.tar"))

    def pil() -> int:
        recs = pil_shard_records(tars)
        return sum(1 for r in recs if pil_shard_sample(r) is not None)

    passes["shards_pil"] = pil
    return passes


LATENT_NAMES = ("latent_composite", "latent_foreground", "latent_background")


def latent_passes(args) -> dict:
    """(c) the FBDD latent cache, latents of C, F and B per sample, read by key in the shuffled
    order training asks for them: the sharded cache (``CacheReader``) and the per-sample folder."""
    dtype = getattr(torch, args.latent_dtype)
    g = torch.Generator().manual_seed(0)
    keys = [f"sample_{i:06d}" for i in range(args.num_latent)]
    entries = {k: {n: torch.randn(LATENT_SHAPE, generator=g).to(dtype) for n in LATENT_NAMES} for k in keys}
    order = [keys[i] for i in np.random.default_rng(0).permutation(len(keys))]
    folder = args.workdir / f"latents_{args.latent_dtype}"
    for key in keys:
        if not (folder / f"{key}.safetensors").is_file():
            save_sidecar(folder, key, entries[key])
    passes = {"latents_sidecar": lambda: sum(1 for k in order if load_sidecar(folder, k))}
    try:
        reader = _sharded_latent_cache(args.workdir / f"latent_shards_{args.latent_dtype}", entries)
    except (ImportError, TypeError, AttributeError) as e:  # the sharded cache is newer than this script
        print(f"sharded latent cache not timed ({type(e).__name__}: {e})")
    else:
        passes["latents_shards"] = lambda: sum(1 for k in order if reader.get(k))
    return passes


def _sharded_latent_cache(root: Path, entries: dict):
    from layeringdiff.data.cache_reader import CacheReader
    from layeringdiff.data.cache_shards import build_manifest, cache_shard_writer, write_plan

    keys, per_shard = list(entries), 100
    n_shards = -(-len(keys) // per_shard)
    write_plan(root, "train", n_shards)
    for s in range(n_shards):
        with cache_shard_writer(root, "train", s, {"bench": s}) as add:
            for key in keys[s * per_shard : (s + 1) * per_shard]:
                add(key, entries[key])
    build_manifest(root)
    return CacheReader(root)


ROWS = [
    ("(a) on the fly, folders (1024 RGBA PNG + 1-2 MP JPEG)", "folders", "folders_pil"),
    ("    plain PIL baseline, same files", "folders_pil", None),
    ("(b) shards, PNG layers", "shards_png", "shards_pil"),
    ("    shards, TIFF layers (zstd + predictor)", "shards_tiff", "shards_pil"),
    ("    shards, raw .npy layers", "shards_npy", "shards_pil"),
    ("    plain PIL baseline, same PNG shards", "shards_pil", None),
    ("(c) latent cache shards (C, F, B latents by key; CacheReader)", "latents_shards", None),
    ("    latent cache, per-sample safetensors folder", "latents_sidecar", None),
]


def report(results: dict, args) -> None:
    print(f"\nsamples/s per core at {SIZE}x{SIZE} (1 thread; interleaved passes, best of {args.rounds}):")
    print(
        f"{'':62s} {'wall':>7s} | {'CPU-t':>7s} | x baseline (CPU-t) | cores per GPU at {args.gpu_rate:g}/s"
    )
    rows = list(ROWS) + [
        (f"    shards, {f} layers", f"shards_{f}", "shards_pil")
        for f in args.formats
        if f not in ("png", "npy", "tiff")
    ]
    latents = results.get("latents_shards", results.get("latents_sidecar"))
    if latents and "shards_tiff" in results:  # FBDD with cached latents still reads alpha, keys: shards
        results["fbdd_cached"] = tuple(1 / (1 / a + 1 / b) for a, b in zip(results["shards_tiff"], latents))
        rows.append(("FBDD input with the latent cache = TIFF shards + latent cache", "fbdd_cached", None))
    for label, key, base in rows:
        if key not in results:
            continue
        wall, cpu = results[key]
        ratio = f"{cpu / results[base][1]:6.2f}x" if base else ""
        cores = args.gpu_rate / cpu
        print(
            f"{label:62s} {wall:7.1f} | {cpu:7.1f} | {ratio:>18s} | {cores:5.2f} -> num_workers {workers(cores)}"
        )
    print(machine_line({"torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()}))
    print(
        "cores per GPU = gpu rate / (samples per CPU-second); num_workers = ceil(1.25 x cores): 25%"
        " headroom for collation, pinning and the training process itself."
    )


def workers(cores: float) -> int:
    return max(1, math.ceil(1.25 * cores))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/layeringdiff_bench_data"))
    ap.add_argument("--num-fg", type=int, default=40)
    ap.add_argument("--num-bg", type=int, default=40)
    ap.add_argument("--num-shard", type=int, default=300)
    ap.add_argument("--num-latent", type=int, default=300)
    ap.add_argument("--latent-dtype", default="float16", choices=("float16", "float32"))
    ap.add_argument("--formats", nargs="+", default=["png", "tiff", "npy"], help="shard layer codecs to time")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gpu-rate", type=float, default=90.0, help="images/s one GPU consumes")
    ap.add_argument("--only", nargs="+", choices=("folders", "shards", "latents"), default=None)
    args = ap.parse_args()
    if "png" not in args.formats:
        args.formats.insert(0, "png")  # the baseline reads the PNG shards
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(machine_line({"torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()}))

    t0 = time.perf_counter()
    parts = {"folders": folder_passes, "shards": shard_passes, "latents": latent_passes}
    results = {}
    for name, make in parts.items():
        if args.only and name not in args.only:
            continue
        passes = make(args)
        print(f"{name}: inputs ready after {time.perf_counter() - t0:.1f} s under {args.workdir}")
        results.update(interleaved_best(passes, args.rounds))
    report(results, args)


if __name__ == "__main__":
    main()
