"""``infer(cfg)``: decompose a real image or generate layers from text; write the output folder(s).

Modes (see configs/infer.yaml):

* **bundled sample** (no image, prompt or prompt file): the bundled real photograph with its
  rough mask, so a fresh CPU machine decomposes a real image with no weights;
* **real image**: ``image=PATH`` plus one of ``foreground``, ``box``, ``mask``, ``trimap``, ``alpha``
  (a list of them gives several layers, top-most first);
* **text**: ``prompt=... foreground_indices=[0,1,2]`` (a list of lists for several layers);
* **batch**: ``prompts=FILE`` (JSON lines) into ``out=DIR``, one folder per line, resumable.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from importlib import metadata
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from layeringdiff.export import check_writable, save_decomposition
from layeringdiff.files import atomic_write_bytes
from layeringdiff.images import load_mask, load_rgb
from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.foreground import ForegroundSpec, check_box, sample_dir
from layeringdiff.pipeline.pipeline import check_generation_size, check_image_size
from layeringdiff.pipeline.prompt import foreground_prompt
from layeringdiff.weights import MissingWeightsError

log = logging.getLogger(__name__)

FOREGROUND_KEYS = ("foreground", "box", "mask", "trimap", "alpha")
VERSIONED = (
    "layeringdiff",
    "torch",
    "diffusers",
    "transformers",
    "pymatting",
    "psd-tools",
    "opencv-python-headless",
)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on a GPU that supports it (else fp16), fp32 on CPU."""
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    table = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}  # fmt: skip
    if name not in table:
        raise InputError(f"dtype={name} is not one of auto, fp32, fp16, bf16")
    return table[name]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _plain(x):
    return OmegaConf.to_container(x, resolve=True) if isinstance(x, (DictConfig, ListConfig)) else x


def _is_multi(value, depth: int) -> bool:
    """Is ``value`` a list of per-layer values whose own nesting depth is ``depth``?"""
    if not isinstance(value, list) or not value:
        return False
    inner = value[0]
    for _ in range(depth):
        if not isinstance(inner, list):
            return False
        inner = inner[0] if inner else None
    return True


def per_layer(value, depth: int) -> list:
    """Normalise a CLI value to one entry per layer.

    ``depth`` is the nesting of ONE layer's value: 0 for a text/path ("a cat" or ["a cat", "a dog"]),
    1 for a box or an index list ([0,1,2] or [[0,1,2],[5,6]]).
    """
    value = _plain(value)
    if depth == 0:
        return list(value) if isinstance(value, list) else [value]
    return value if _is_multi(value, depth) else [value]


def foreground_specs(item: dict, size: tuple[int, int]) -> list[ForegroundSpec]:
    """Build the per-layer foreground specs from ``foreground``/``box``/``mask``/``trimap``/``alpha``."""
    given = [k for k in FOREGROUND_KEYS if item.get(k) is not None]
    if len(given) > 1:
        raise InputError(f"give only one of {', '.join(FOREGROUND_KEYS)} (got {', '.join(given)})")
    if not given:
        return []
    key = given[0]
    values = per_layer(item[key], 1 if key == "box" else 0)
    specs = []
    for v in values:
        if key == "foreground":
            if not isinstance(v, str) or not v.strip():
                raise InputError(f"foreground text must be a non-empty string, got {v!r}")
            specs.append(ForegroundSpec(text=v))
        elif key == "box":
            specs.append(ForegroundSpec(box=check_box(v, *size)))  # before any model is loaded
        else:
            tensor = load_mask(v)
            if tuple(tensor.shape[-2:]) != size:
                raise InputError(
                    f"{key} {v} is {tensor.shape[-1]}x{tensor.shape[-2]} but the image is {size[1]}x{size[0]}"
                )
            specs.append(ForegroundSpec(**{key: tensor}))
    return specs


def bundled_sample(name: str) -> dict:
    """The bundled real photograph and its rough mask (data/samples/<name>.json)."""
    info_path = sample_dir() / f"{name}.json"
    if not info_path.is_file():
        raise InputError(f"no bundled sample {info_path}")
    info = json.loads(info_path.read_text())
    return {"image": str(sample_dir() / info["image"]), "mask": str(sample_dir() / info["mask"])}


def check_weights(cfg: DictConfig, text_mode: bool, needs_detector: bool) -> None:
    """Fail before any work when a component this run needs is missing (one line for all of them)."""
    from layeringdiff.weights import require

    require(required_weights(cfg, text_mode))
    if needs_detector and not cfg.pipeline.foreground.get("grounding_dino"):
        raise MissingWeightsError(
            "a text foreground needs Grounding DINO weights: set pipeline.foreground.grounding_dino "
            "(e.g. IDEA-Research/grounding-dino-tiny) or give box=, mask=, trimap= or alpha= instead"
        )


def required_weights(cfg: DictConfig, text_mode: bool) -> dict[str, dict]:
    """Every pretrained component this run will load, for one up-front ``weights.require`` check."""
    p = cfg.pipeline
    specs: dict[str, dict] = {}
    if text_mode:
        specs["SDXL"] = {"name_or_path": p.generator.sdxl, "subfolder": "unet"}
        if p.generator.get("controlnet"):
            specs["ControlNet"] = {"name_or_path": p.generator.controlnet}
    for key, name in (("grounding_dino", "Grounding DINO"), ("sam", "SAM"), ("vitmatte", "ViTMatte")):
        if p.foreground.get(key):
            specs[name] = {"name_or_path": p.foreground[key]}
    backend = p.backends[cfg.backend]
    if cfg.backend == "classical" and backend.get("sd2_inpainting"):
        specs["SD2 inpainting"] = {"name_or_path": backend.sd2_inpainting, "subfolder": "unet"}
    if cfg.backend == "layeringdiff":
        for key in ("fbdd_foreground", "fbdd_background", "fan", "ban"):
            if backend.get(key):
                specs[key] = {"name_or_path": backend[key], "required": ()}
    return specs


def build_tiny(cfg: DictConfig) -> None:
    """Write the tiny random-weight repos a smoke config points at (only when ``build_tiny``)."""
    from layeringdiff.tiny import foreground as tiny_foreground
    from layeringdiff.tiny import sdxl as tiny_sdxl

    p = cfg.pipeline
    tiny_sdxl.build(p.generator.sdxl)
    if p.generator.get("controlnet"):
        tiny_sdxl.build_controlnet(p.generator.controlnet)
    for key, builder in (
        ("grounding_dino", tiny_foreground.build_grounding_dino),
        ("sam", tiny_foreground.build_sam),
        ("vitmatte", tiny_foreground.build_vitmatte),
    ):
        if p.foreground.get(key):
            builder(p.foreground[key])
    if cfg.backend == "classical" and p.backends.classical.get("sd2_inpainting"):
        from layeringdiff.tiny import sd2 as tiny_sd2

        tiny_sd2.build(p.backends.classical.sd2_inpainting)
    if cfg.backend == "layeringdiff":
        from layeringdiff.tiny import layering as tiny_layering

        tiny_layering.build(p.backends.layeringdiff)


def build_pipeline(cfg: DictConfig, text_mode: bool, device: torch.device, dtype: torch.dtype):
    """Instantiate the pipeline components the run needs from ``cfg.pipeline``."""
    from hydra.utils import instantiate

    from layeringdiff.pipeline.pipeline import LayeringDiffPipeline

    if cfg.backend not in cfg.pipeline.backends:
        raise InputError(f"backend={cfg.backend} is not one of {', '.join(cfg.pipeline.backends)}")
    # pymatting (classical layering, closed-form matting) runs on CPU in float64 whatever the device.
    layering_dtype = dtype if cfg.backend == "layeringdiff" else torch.float32
    generator = None
    if text_mode:
        generator = instantiate(cfg.pipeline.generator, device=device, dtype=dtype, offload=cfg.offload)
    foreground = instantiate(cfg.pipeline.foreground, device=device, dtype=dtype, offload=cfg.offload)
    extra = {"offload": cfg.offload} if cfg.backend == "layeringdiff" else {}
    layering = instantiate(cfg.pipeline.backends[cfg.backend], device=device, dtype=layering_dtype, **extra)
    pipe = LayeringDiffPipeline(foreground=foreground, layering=layering, generator=generator)
    pipe.set_progress_bar(bool(cfg.progress))
    return pipe


def prepare_item(item: dict) -> dict:
    """Read and check one request's inputs (cheap; runs before any model is loaded)."""
    request: dict = {"meta": {}}
    if item.get("prompt") is not None and item.get("image") is not None:
        raise InputError("give either prompt= (generate) or image= (decompose a real image), not both")
    if item.get("prompt") is not None:
        prompt = str(item["prompt"])
        if not prompt.strip():
            raise InputError("the prompt is empty")
        request["prompt"] = prompt
        specs = foreground_specs(item, (0, 0)) if item.get("foreground") is not None else []
        if any(item.get(k) is not None for k in ("box", "mask", "trimap", "alpha")):
            raise InputError(
                "in text mode give foreground_indices=[...] or foreground=TEXT (box/mask/... need image=)"
            )
        if not specs:
            if item.get("foreground_indices") is None:
                raise InputError("text mode needs foreground_indices, e.g. foreground_indices=[0,1,2]")
            indices = per_layer(item["foreground_indices"], 1)
            specs = [ForegroundSpec(text=foreground_prompt(prompt, ix)) for ix in indices]
            request["meta"]["foreground_indices"] = indices
        request["foregrounds"] = specs
        if item.get("control_image") is not None:
            request["control_image"] = load_rgb(item["control_image"])
        return request
    if item.get("image") is None:
        raise InputError("nothing to do: give image=PATH or prompt=TEXT")
    image = load_rgb(item["image"])
    check_image_size(image, str(item["image"]))  # before any model is loaded
    request["image"] = image
    request["foregrounds"] = foreground_specs(item, tuple(image.shape[-2:]))
    if not request["foregrounds"]:
        raise InputError(
            f"image={item['image']}: give the foreground as foreground=TEXT, box=[x0,y0,x1,y1], mask=, trimap= or alpha="
        )
    return request


def run_item(pipe, cfg: DictConfig, item: dict, request: dict, out_dir: Path, seed: int) -> Path:
    """Run the pipeline on one prepared request and write its output folder."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    output = pipe(
        prompt=request.get("prompt"),
        image=request.get("image"),
        foregrounds=request["foregrounds"],
        negative_prompt=item.get("negative_prompt"),
        height=int(cfg.height),
        width=int(cfg.width),
        num_inference_steps=int(cfg.num_inference_steps),
        guidance_scale=float(cfg.guidance_scale),
        control_image=request.get("control_image"),
        generator=generator,
    )
    timings = {k: round(v, 4) for k, v in output.timings.items()}
    timings["pipeline_total"] = round(time.perf_counter() - start, 4)
    meta = {
        "mode": "text" if request.get("prompt") is not None else "image",
        "inputs": {k: _plain(v) for k, v in item.items() if v is not None and k != "meta"},
        **request["meta"],
        "prompt": request.get("prompt"),
        "foreground_prompts": output.foreground_prompts,
        "boxes": output.boxes,
        "box_scores": output.scores,
        "matting": output.matting,
        "backend": cfg.backend,
        "seed": seed,
        "size": list(output.composite.shape[-2:]),
        "num_layers": len(output.foregrounds),
        "recomposite_max_error": float((output.recomposite() - output.composite).abs().max()),
        "timings_s": timings,
        "versions": package_versions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_start = time.perf_counter()
    path = save_decomposition(
        out_dir, output.composite, output.background, output.foregrounds, output.alphas, meta
    )
    log.info(
        "wrote %s (%.2f s, write %.2f s)", path, timings["pipeline_total"], time.perf_counter() - write_start
    )
    return path


def read_prompt_file(path: str | Path) -> list[dict]:
    """Batch requests: JSON lines with ``prompt`` and ``foreground_indices`` (or ``foreground``),
    optional ``id`` (output folder name; default the 0-based line number, 5 digits),
    ``seed`` (default: config seed + line number) and ``negative_prompt``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompts={path}: no such file")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n + 1}: not a JSON object ({e.msg})") from None
        if not isinstance(item, dict) or "prompt" not in item:
            raise InputError(f"{path}:{n + 1}: each line must be a JSON object with a 'prompt'")
        item.setdefault("id", f"{n:05d}")
        item.setdefault("line", n)
        if not str(item["id"]) or "/" in str(item["id"]) or str(item["id"]).startswith("."):
            raise InputError(f"{path}:{n + 1}: id {item['id']!r} is not a usable folder name")
        items.append(item)
    return items


def infer_batch(cfg: DictConfig, out_root: Path, device, dtype) -> dict:
    """Batch text mode: one output folder per prompt-file line; finished folders are skipped."""
    from tqdm.auto import tqdm

    items = read_prompt_file(cfg.prompts)
    out_root.mkdir(parents=True, exist_ok=True)
    todo, finished, failed = [], 0, []
    for item in items:
        meta = out_root / str(item["id"]) / "meta.json"
        if not meta.is_file():
            todo.append(item)
        elif json.loads(meta.read_text(encoding="utf-8")).get("prompt") == item["prompt"]:
            finished += 1
        else:  # made from another prompt file: never overwritten, never counted as done
            error = f"{meta.parent} holds the output of another prompt; move it away to regenerate"
            log.warning("skipped %s: %s", item["id"], error)
            failed.append({"id": item["id"], "error": error})
    log.info("%d prompts, %d already done, %d to run into %s", len(items), finished, len(todo), out_root)
    done = []
    if todo:
        check_generation_size(int(cfg.height), int(cfg.width))
        check_weights(cfg, text_mode=True, needs_detector=True)
        pipe = build_pipeline(cfg, text_mode=True, device=device, dtype=dtype)
        pipe.set_progress_bar(False)
        for item in tqdm(todo, desc="prompts", disable=not cfg.progress):
            seed = int(item.get("seed", cfg.seed + item["line"]))
            try:
                request = prepare_item(
                    {
                        k: item.get(k)
                        for k in ("prompt", "foreground_indices", "foreground", "negative_prompt")
                    }
                )
                done.append(str(run_item(pipe, cfg, item, request, out_root / str(item["id"]), seed)))
            # one bad prompt, no foreground found, or a non-empty folder without meta.json in the
            # way: skipped and counted, the rest of the batch goes on
            except (InputError, FileExistsError) as e:
                log.warning("skipped %s: %s", item["id"], e)
                failed.append({"id": item["id"], "error": str(e)})
    summary = {
        "total": len(items),
        "skipped_done": finished,
        "written": len(done),
        "failed": failed,
    }
    atomic_write_bytes(out_root / "batch_summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return {"out_dirs": done, **summary}


def infer(cfg: DictConfig) -> dict:
    """Run inference as configured (see configs/infer.yaml for every key).

    Returns:
        ``{"out_dirs": [...], ...}``: the output folder(s) written (batch mode adds counts).

    Raises:
        InputError, ImageReadError, MissingWeightsError, FileExistsError, PermissionError: with
        one-line messages; nothing is written in that case.
    """
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.backend not in cfg.pipeline.backends:
        raise InputError(f"backend={cfg.backend} is not one of {', '.join(cfg.pipeline.backends)}")
    if cfg.pipeline.get("build_tiny"):
        build_tiny(cfg)
    default_out = Path(cfg.paths.output_dir)
    if cfg.get("prompts"):
        return infer_batch(cfg, Path(cfg.out) if cfg.out else default_out, device, dtype)

    item = {
        k: cfg.get(k)
        for k in (
            "image",
            "prompt",
            "foreground_indices",
            "negative_prompt",
            "control_image",
            *FOREGROUND_KEYS,
        )
    }
    if item["image"] is None and item["prompt"] is None:
        item.update(bundled_sample(cfg.sample))
        log.info("no image or prompt given: decomposing the bundled sample %s", item["image"])
    # 1. everything cheap first: inputs, output folder, weights -- so bad input fails before work
    request = prepare_item(item)
    out_dir = check_writable(Path(cfg.out) if cfg.out else default_out / "layers")
    text_mode = "prompt" in request
    if text_mode:
        check_generation_size(int(cfg.height), int(cfg.width))
    check_weights(cfg, text_mode, needs_detector=any(s.text for s in request["foregrounds"]))
    # 2. load models, run, write
    pipe = build_pipeline(cfg, text_mode, device, dtype)
    path = run_item(pipe, cfg, item, request, out_dir, int(cfg.seed))
    return {"out_dirs": [str(path)]}
