"""Build what an inference run needs from its config: device and dtype, the up-front weights
check, the tiny random-weight repos of a smoke run, and the pipeline with its layering member."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from layeringdiff.pipeline.errors import InputError
from layeringdiff.weights import MissingWeightsError

# Weights a layering member may name (config key -> what resolve_pretrained checks in the folder).
# The inpainter is not here: its sd2 kind falls back (logged) when its weights are missing.
LAYERING_WEIGHTS = {
    "fbdd_foreground": ("fbdd_foreground", {"required": ()}),
    "fbdd_background": ("fbdd_background", {"required": ()}),
    "fan": ("fan", {"required": ()}),
    "ban": ("ban", {"required": ()}),
}


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
    for key, (name, options) in LAYERING_WEIGHTS.items():
        if cfg.layering.get(key):
            specs[name] = {"name_or_path": cfg.layering[key], **options}
    return specs


def check_weights(cfg: DictConfig, text_mode: bool, needs_detector: bool) -> None:
    """Fail before any work when a component this run needs is missing (one line for all of them)."""
    from layeringdiff.weights import require

    require(required_weights(cfg, text_mode))
    if needs_detector and not cfg.pipeline.foreground.get("grounding_dino"):
        raise MissingWeightsError(
            "a text foreground needs Grounding DINO weights: set pipeline.foreground.grounding_dino "
            "(e.g. IDEA-Research/grounding-dino-tiny) or give box=, mask=, trimap= or alpha= instead"
        )


def build_tiny(cfg: DictConfig) -> None:
    """Write the tiny random-weight repos a smoke config points at (only when ``pipeline.build_tiny``)."""
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
    inpainter = cfg.layering.get("inpainter") or {}
    if inpainter.get("kind") == "sd2" and inpainter.get("weights"):
        from layeringdiff.tiny import sd2 as tiny_sd2

        tiny_sd2.build(inpainter.weights)
    if cfg.layering.get("fbdd_foreground"):
        from layeringdiff.tiny import layering as tiny_layering

        tiny_layering.build(cfg.layering)
    if str(cfg.layering.get("_target_", "")).startswith("layeringdiff.pipeline.fba_layering."):
        from layeringdiff.tiny import fba as tiny_fba

        tiny_fba.build(cfg.layering.weights)


def build_pipeline(cfg: DictConfig, text_mode: bool, device: torch.device, dtype: torch.dtype):
    """Instantiate the pipeline components the run needs from ``cfg.pipeline`` and ``cfg.layering``."""
    from hydra.utils import instantiate

    from layeringdiff.pipeline.pipeline import LayeringDiffPipeline

    generator = None
    if text_mode:
        generator = instantiate(cfg.pipeline.generator, device=device, dtype=dtype, offload=cfg.offload)
    foreground = instantiate(cfg.pipeline.foreground, device=device, dtype=dtype, offload=cfg.offload)
    layering = instantiate(cfg.layering, device=device, dtype=dtype, offload=cfg.offload)
    pipe = LayeringDiffPipeline(foreground=foreground, layering=layering, generator=generator)
    pipe.set_progress_bar(bool(cfg.progress))
    return pipe
