"""Run one checked request through the pipeline and write its output folder with ``meta.json``
(inputs, what each stage found, timings, package versions, the resolved config)."""

from __future__ import annotations

import logging
import platform
import time
from importlib import metadata
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from layeringdiff.export import save_decomposition
from layeringdiff.pipeline.generate import GenerationSettings
from layeringdiff.pipeline.request import LayerRequest
from layeringdiff.tasks.infer_inputs import plain

log = logging.getLogger(__name__)

VERSIONED = (
    "layeringdiff",
    "torch",
    "diffusers",
    "transformers",
    "pymatting",
    "psd-tools",
    "opencv-python-headless",
)


def package_versions() -> dict[str, str]:
    """Python's and each installed :data:`VERSIONED` package's version."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def generation_settings(cfg: DictConfig) -> GenerationSettings:
    """The SDXL settings of the config, checked (one-line ``InputError`` for NaN, 0 or negative steps...)."""
    return GenerationSettings(cfg.height, cfg.width, cfg.num_inference_steps, cfg.guidance_scale)


def run_metadata(
    cfg: DictConfig, inputs: dict, request: LayerRequest, output, seed: int, timings: dict
) -> dict:
    """The ``meta.json`` of one decomposition."""
    return {
        "mode": "text" if request.text_mode else "image",
        "inputs": {k: plain(v) for k, v in inputs.items() if v is not None},
        **(
            {"foreground_indices": request.foreground_indices}
            if request.foreground_indices is not None
            else {}
        ),
        "prompt": request.prompt,
        "foreground_prompts": output.foreground_prompts,
        "boxes": output.boxes,
        "box_scores": output.scores,
        "matting": output.matting,
        "layering": cfg.layering.name,
        "seed": seed,
        "size": list(output.composite.shape[-2:]),
        "num_layers": len(output.foregrounds),
        "recomposite_max_error": float((output.recomposite() - output.composite).abs().max()),
        "timings_s": timings,
        "versions": package_versions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def run_request(pipe, cfg: DictConfig, inputs: dict, request: LayerRequest, out_dir: Path, seed: int) -> Path:
    """Run the pipeline on one checked request and write its output folder (atomically).

    ``inputs`` are the settings the request was made from (recorded in ``meta.json``).
    """
    start = time.perf_counter()
    output = pipe.run(request, generation_settings(cfg), torch.Generator().manual_seed(seed))
    timings = {k: round(v, 4) for k, v in output.timings.items()}
    timings["pipeline_total"] = round(time.perf_counter() - start, 4)
    meta = run_metadata(cfg, inputs, request, output, seed, timings)
    write_start = time.perf_counter()
    path = save_decomposition(
        out_dir, output.composite, output.background, output.foregrounds, output.alphas, meta
    )
    log.info(
        "wrote %s (%.2f s, write %.2f s)", path, timings["pipeline_total"], time.perf_counter() - write_start
    )
    return path
