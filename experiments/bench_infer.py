"""Per-stage seconds of inference (issue 5 benchmark; issue 14: the classical path in <= 3 CPU s).

    .venv/bin/python experiments/bench_infer.py                 # classical backend at 768x768 on CPU
    .venv/bin/python experiments/bench_infer.py --grabcut       # ... and the box entry (GrabCut) once
    .venv/bin/python experiments/bench_infer.py --full --sdxl stabilityai/stable-diffusion-xl-base-1.0 \
        --grounding-dino IDEA-Research/grounding-dino-tiny --sam facebook/sam-vit-huge \
        --vitmatte hustvl/vitmatte-base-composition-1k --fbdd-foreground W/fbdd_foreground \
        --fbdd-background W/fbdd_background --fan W/hfa_fan --ban W/hfa_ban [--offload]   # on a GPU

The classical run decomposes the bundled photograph resized to the given size with its rough
mask through the components `python infer.py` builds (configs/infer.yaml: the default pipeline's
foreground determination and the classical layering with its configured inpainter), timing each
stage: trimap, closed-form matting, and the layering's own stages (ClassicalLayering's ``clock``).
In the same run, passes alternating, it times the path as it was before issue 14 ("old": pymatting's
``estimate_alpha_cf``, Germer et al. on numba's default thread count, the projection evaluated at
every pixel) and reports the differences between the two paths' alpha and layers. Medians of --repeats after one warm-up pass
of each (numba compilation, first allocations). The full run times text -> layers (SDXL 30 steps,
foreground determination, 2 x `fbdd.num_inference_steps` FBDD steps (configs/fbdd/default.yaml),
HFA) in bf16 and reports peak GPU memory; it needs real weights and a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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


def classical_components():
    """The foreground determination and layering `python infer.py` builds (configs/infer.yaml defaults)."""
    from hydra import compose, initialize_config_dir

    from layeringdiff.tasks.infer_build import build_pipeline

    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("infer", overrides=["progress=false"])
    pipe = build_pipeline(cfg, text_mode=False, device=torch.device("cpu"), dtype=torch.float32)
    return pipe.foreground, pipe.layering, cfg.layering


class StageClock:
    """``clock(name)`` context manager adding (wall, CPU) seconds of each stage to ``self.times``."""

    def __init__(self, prefix: str = ""):
        self.prefix, self.times = prefix, {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start, cpu = time.perf_counter(), time.process_time()
        yield
        self.times[self.prefix + name] = (time.perf_counter() - start, time.process_time() - cpu)


STAGES = {  # clock name -> (table row, what the old path runs, what the new one runs)
    "trimap": ("trimap from the mask (10x10 kernel, 5 + 5 iterations)", "", ""),
    "matting": ("closed-form matting", "pymatting `estimate_alpha_cf`", "ours: exact sparse Cholesky"),
    "germer": (
        "Germer et al. F and B (pymatting `estimate_foreground_ml`)",
        "numba threads: default",
        "1 numba thread",
    ),
    "inpaint": ("inpainting the hidden background (alpha > {hole}; {inpainter})", "", ""),
    "projection": ("projection to Eq. 1 (exact re-compositing)", "every pixel", "0 < alpha < 1 only"),
}


def decompose(image, mask, foreground, layering, old: bool):
    """One decomposition through the real components; ``old``: pymatting CF and the dense projection."""
    from layeringdiff.pipeline import layering as layering_module
    from layeringdiff.pipeline.foreground import closed_form_matting

    clock = StageClock()
    with clock("trimap"):
        trimap, _ = foreground.trimap_from_mask(image, mask)
    with clock("matting"):
        if old:
            alpha = closed_form_matting(image, trimap, solver="pymatting")
        else:
            alpha, _ = foreground.matte(image, trimap)
    saved = layering_module.project_to_composite, layering_module.germer_foreground_background
    if old:  # the projection at every pixel; pymatting's Germer et al. on numba's default threads
        layering_module.project_to_composite = layering_module.project_to_composite_dense
        layering_module.germer_foreground_background = functools.partial(saved[1], numba_threads=None)
    try:
        fg, bg = layering(image, alpha, torch.Generator().manual_seed(0), trimap=trimap, clock=clock)
    finally:
        layering_module.project_to_composite, layering_module.germer_foreground_background = saved
    return (alpha, fg, bg), clock.times


def bench_classical(size: int, repeats: int, grabcut: bool = False) -> tuple[dict, list[str]]:
    from layeringdiff.images import pil_to_tensor
    from layeringdiff.pipeline.boxes import grabcut_mask

    info = json.loads((ROOT / "data/samples/astronaut.json").read_text())
    photo = Image.open(ROOT / "data/samples" / info["image"]).convert("RGB")
    image = pil_to_tensor(photo.resize((size, size), Image.BICUBIC))
    mask = (
        pil_to_tensor(Image.open(ROOT / "data/samples" / info["mask"]).resize((size, size), Image.NEAREST))
        > 0.5
    ).float()
    foreground, layering, layering_cfg = classical_components()
    if foreground.matting is not None or type(layering).__name__ != "ClassicalLayering":
        raise SystemExit(
            "the default infer config no longer builds the classical backend; update this benchmark"
        )
    inpainter = dict(layering_cfg.inpainter)
    runs: dict[str, list[tuple[float, float]]] = {}
    outputs = {}
    for i in range(repeats + 1):  # pass 0 warms both paths up (numba, allocations); not counted
        for old in (True, False) if i % 2 else (False, True):
            out, times = decompose(image, mask, foreground, layering, old)
            outputs[old] = out
            if i:
                for k, v in times.items():
                    runs.setdefault((old, k), []).append(v)
        if i:
            _, t = timed(write_files, image, outputs[False][1], outputs[False][2], outputs[False][0])
            runs.setdefault((False, "write"), []).append(t)
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()
    }
    rows = {}
    for key, (label, old_how, new_how) in STAGES.items():
        kind = f"{inpainter.get('kind')} {inpainter.get('variant', '')}, max_side {inpainter.get('max_side')}"
        label = label.format(hole=layering.hole_threshold, inpainter=kind)
        if old_how:
            label += f" -- old: {old_how}; new: {new_how}"
        rows[key] = (label, med.get((True, key), (0.0, 0.0)), med.get((False, key), (0.0, 0.0)))
    total_old = tuple(sum(r[1][j] for r in rows.values()) for j in (0, 1))
    total_new = tuple(sum(r[2][j] for r in rows.values()) for j in (0, 1))
    rows["total"] = ("**total, mask entry (no file writing)**", total_old, total_new)
    rows["write"] = (
        "encode PNGs + PSD + ORA (not in the total; same code both paths)",
        (float("nan"),) * 2,
        med[(False, "write")],
    )
    if grabcut:
        box = [v * size / photo.width for v in info["box"]]
        _, t = timed(grabcut_mask, image, box)
        rows["grabcut"] = (
            "GrabCut (box entry instead of a mask; not in the total; once)",
            (float("nan"),) * 2,
            t,
        )
    (a0, f0, b0), (a1, f1, b1) = outputs[True], outputs[False]
    visible = (a1 > 0).expand_as(f1)  # F where alpha = 0 is invisible (Germer et al. extrapolate it)
    seen = (a1 <= layering.hole_threshold).expand_as(b1)  # B outside the inpainted hole
    notes = [
        f"old vs new outputs at {size}x{size}: max |alpha| diff {float((a0 - a1).abs().max()):.2e}; "
        f"max |F| diff {float((f0 - f1).abs().max()):.2e} ({float((f0 - f1).abs()[visible].max()):.2e} "
        f"where alpha > 0); max |B| diff {float((b0 - b1).abs().max()):.2e} "
        f"({float((b0 - b1).abs()[seen].max()):.2e} outside the inpainted hole); "
        f"hole pixels that differ: {int(((a0 > layering.hole_threshold) != (a1 > layering.hole_threshold)).sum())}",
        f"new path total: {total_new[1]:.3f} CPU s ({'<=' if total_new[1] <= 3.0 else '>'} 3.0, issue 14 item 1)",
    ]
    return rows, notes


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
    p.add_argument("--grabcut", action="store_true", help="also time the box entry (GrabCut) once")
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
        print(machine_line())
        print(f"| stage ({title}; median of {args.repeats}) | wall s | CPU s |\n|---|---:|---:|")
        for k, (wall, cpu) in results.items():
            print(f"| {k} | {wall:.3f} | {cpu:.3f} |")
        return
    at_start = machine_line()
    rows, notes = bench_classical(args.size, args.repeats, args.grabcut)
    print(at_start)
    print(
        f"| stage (classical backend, {args.size}x{args.size}, CPU; median of {args.repeats}) "
        "| old wall s | old CPU s | new wall s | new CPU s |\n|---|---:|---:|---:|---:|"
    )
    for label, (w0, c0), (w1, c1) in rows.values():
        print(f"| {label} | {w0:.3f} | {c0:.3f} | {w1:.3f} | {c1:.3f} |".replace("nan", "-"))
    for note in notes:
        print(note)
    print(machine_line(), "(at the end)")


if __name__ == "__main__":
    main()
