"""Per-stage seconds of inference (issue 5 benchmark).

    .venv/bin/python experiments/bench_infer.py                 # classical backend at 768x768 on CPU
    .venv/bin/python experiments/bench_infer.py --full --sdxl stabilityai/stable-diffusion-xl-base-1.0 \
        --grounding-dino IDEA-Research/grounding-dino-tiny --sam facebook/sam-vit-huge \
        --vitmatte hustvl/vitmatte-base-composition-1k --fbdd-foreground W/fbdd_foreground \
        --fbdd-background W/fbdd_background --fan W/hfa_fan --ban W/hfa_ban [--offload]   # on a GPU

The classical run decomposes the bundled photograph resized to the given size with its rough
mask (and, as the alternative entry, a box through GrabCut), timing each stage (median of
--repeats). The full run times text -> layers (SDXL 30 steps, foreground determination, 2 x
`fbdd.num_inference_steps` FBDD steps (configs/fbdd/default.yaml), HFA) in bf16 and reports peak GPU memory; it needs real weights and a GPU.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, *args, **kwargs):
    """Run ``fn``; return its output and (wall seconds, CPU seconds of this process)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - start, time.process_time() - cpu)


def write_files(image, fg, bg, alpha) -> None:
    """Encode what an output folder holds (to memory, so disk speed does not count)."""
    from layeringdiff.export import ora_bytes, psd_bytes
    from layeringdiff.images import tensor_to_pil

    for x in (image, fg, bg, alpha):
        tensor_to_pil(x).save(io.BytesIO(), format="PNG")
    psd_bytes(bg, [fg], [alpha])
    ora_bytes(bg, [fg], [alpha])


def bench_classical(size: int, repeats: int) -> dict[str, float]:
    from layeringdiff.images import pil_to_tensor
    from layeringdiff.pipeline.baselines import germer_foreground_background, inpaint_opencv
    from layeringdiff.pipeline.boxes import grabcut_mask
    from layeringdiff.pipeline.foreground import ForegroundDetermination, closed_form_matting
    from layeringdiff.pipeline.layering import project_to_composite

    info = json.loads((ROOT / "data/samples/astronaut.json").read_text())
    photo = Image.open(ROOT / "data/samples" / info["image"]).convert("RGB")
    scale = size / photo.width
    image = pil_to_tensor(photo.resize((size, size), Image.BICUBIC))
    mask = (
        pil_to_tensor(Image.open(ROOT / "data/samples" / info["mask"]).resize((size, size), Image.NEAREST))
        > 0.5
    ).float()
    box = [v * scale for v in info["box"]]
    fd = ForegroundDetermination()
    closed_form_matting(image[:, :64, :64], fd.trimap_from_mask(image, mask)[0][:, :64, :64])  # numba warm-up
    runs: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeats):
        t = {}
        _, t["grabcut (box entry, alternative)"] = timed(grabcut_mask, image, box)
        (trimap, _), t["trimap (10x10, 5+5 iterations)"] = timed(fd.trimap_from_mask, image, mask)
        alpha, t["closed-form matting"] = timed(closed_form_matting, image, trimap)
        (fg, bg), t["Germer et al. F and B"] = timed(germer_foreground_background, image, alpha)
        bg, t["OpenCV inpainting (alpha > 0.95)"] = timed(inpaint_opencv, bg, alpha > 0.95, 5)
        (fg, bg), t["projection to Eq. 1"] = timed(project_to_composite, fg, bg, alpha, image)

        _, t["write PNGs + PSD + ORA"] = timed(write_files, image, fg, bg, alpha)
        for k, v in t.items():
            runs.setdefault(k, []).append(v)
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()
    }
    kept = [v for k, v in med.items() if not k.startswith("grabcut")]
    med["total (mask entry)"] = (sum(w for w, _ in kept), sum(c for _, c in kept))
    return med


def fbdd_steps() -> int:
    from omegaconf import OmegaConf

    return int(OmegaConf.load(ROOT / "configs" / "fbdd" / "default.yaml").num_inference_steps)


def bench_full(args) -> dict[str, float]:
    from layeringdiff.pipeline.foreground import ForegroundDetermination
    from layeringdiff.pipeline.generate import CompositeGenerator
    from layeringdiff.pipeline.layering import LayeringDiffLayering
    from layeringdiff.pipeline.pipeline import LayeringDiffPipeline

    if not torch.cuda.is_available():
        raise SystemExit("--full needs a GPU (none found); the classical CPU benchmark runs without --full")
    device, dtype = torch.device("cuda"), torch.bfloat16
    pipe = LayeringDiffPipeline(
        ForegroundDetermination.from_pretrained(
            args.grounding_dino, args.sam, args.vitmatte, device, dtype, offload=args.offload
        ),
        LayeringDiffLayering.from_pretrained(
            args.fbdd_foreground,
            args.fbdd_background,
            args.fan,
            args.ban,
            device,
            dtype,
            num_inference_steps=fbdd_steps(),  # configs/fbdd/default.yaml, as infer.py and Table 4
            offload=args.offload,
        ),
        CompositeGenerator.from_pretrained(args.sdxl, device=device, dtype=dtype, offload=args.offload),
    )
    prompt = "A bird flying at sunset over the mountains"
    kwargs = dict(
        prompt=prompt,
        foreground_indices=[[0, 1, 2]],
        height=args.size,
        width=args.size,
        num_inference_steps=30,
    )
    pipe(**kwargs, generator=torch.Generator().manual_seed(0))  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    runs: dict[str, list[float]] = {}
    for i in range(args.repeats):
        start = time.perf_counter()
        out = pipe(**kwargs, generator=torch.Generator().manual_seed(i))
        torch.cuda.synchronize()
        for k, v in {**out.timings, "end to end": time.perf_counter() - start}.items():
            runs.setdefault(k, []).append(v)
    med = {k: (statistics.median(v), float("nan")) for k, v in runs.items()}
    med["peak GPU memory GiB (not seconds)"] = (torch.cuda.max_memory_allocated() / 2**30, float("nan"))
    return med


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave the default)")
    p.add_argument("--full", action="store_true")
    p.add_argument("--offload", action="store_true")
    for name in (
        "sdxl",
        "grounding-dino",
        "sam",
        "vitmatte",
        "fbdd-foreground",
        "fbdd-background",
        "fan",
        "ban",
    ):
        p.add_argument(f"--{name}")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.full:
        results, title = bench_full(args), f"full text-to-layers pipeline, {args.size}x{args.size}, bf16"
    else:
        results, title = (
            bench_classical(args.size, args.repeats),
            f"classical backend, {args.size}x{args.size}, CPU",
        )
    print(machine_line())
    print(f"| stage ({title}; median of {args.repeats}) | wall s | CPU s |\n|---|---:|---:|")
    for k, (wall, cpu) in results.items():
        print(f"| {k} | {wall:.3f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()
