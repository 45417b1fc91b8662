"""A tiny, randomly initialised SDXL repo folder (and an optional tiny SDXL ControlNet).

Same layout and classes as ``stabilityai/stable-diffusion-xl-base-1.0``: ``unet/``, ``vae/``,
``text_encoder/`` (CLIPTextModel), ``text_encoder_2/`` (CLIPTextModelWithProjection),
``tokenizer/``, ``tokenizer_2/``, ``scheduler/`` and ``model_index.json``, so
``StableDiffusionXLPipeline.from_pretrained`` loads it. The UNet has SDXL's "text_time"
added conditioning (pooled text embedding + 6 size/crop numbers); cross-attention width is the
two encoders' hidden sizes concatenated (32 + 32). The VAE factor is 2 (the real one: 8).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from layeringdiff.files import atomic_dir
from layeringdiff.tiny import clip_tokenizer

COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
TEXT_HIDDEN, PROJECTION, TIME_EMBED = 32, 32, 8

UNET_CONFIG = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": [2, 4],
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": TIME_EMBED,
    "transformer_layers_per_block": [1, 1],
    "projection_class_embeddings_input_dim": 6 * TIME_EMBED + PROJECTION,
    "cross_attention_dim": 2 * TEXT_HIDDEN,
    "norm_num_groups": 8,
}

VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 32,
    "scaling_factor": 0.13025,
    "force_upcast": False,
}

SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}

CONTROLNET_CONFIG = {
    k: UNET_CONFIG[k]
    for k in (
        "in_channels", "block_out_channels", "layers_per_block", "down_block_types", "attention_head_dim",
        "use_linear_projection", "addition_embed_type", "addition_time_embed_dim",
        "transformer_layers_per_block", "projection_class_embeddings_input_dim", "cross_attention_dim",
        "norm_num_groups",
    )
} | {"conditioning_embedding_out_channels": [8, 16]}  # fmt: skip


def _text_config() -> dict:
    return {
        "vocab_size": clip_tokenizer.vocab_size(),
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "projection_dim": PROJECTION,
        **clip_tokenizer.special_token_ids(),
    }


def is_complete(path: str | os.PathLike, components=COMPONENTS) -> bool:
    """True when ``model_index.json`` / ``config.json`` and every component folder exist."""
    path = Path(path)
    marker = "model_index.json" if components else "config.json"
    return (path / marker).is_file() and all((path / c).is_dir() for c in components)


@contextmanager
def _building(path: Path, components) -> Iterator[Path]:
    """Yield a temporary sibling folder published as ``path``; a concurrent builder may win the rename."""
    if path.exists():
        raise FileExistsError(f"{path} exists but is not a complete tiny repo; remove it to rebuild")
    try:
        with atomic_dir(path) as tmp:
            yield tmp
    except OSError:  # another process finished first
        if not is_complete(path, components):
            raise


def _own_rng(fn):
    """Run a builder inside a forked torch RNG: its seeding leaves the caller's RNG alone."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)

    return wrapper


@_own_rng
def build(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny SDXL folder at ``path`` (idempotent: a complete folder is kept).

    Args:
        path: the repo folder, e.g. ``${paths.cache_dir}/tiny/sdxl``.
        seed: seed for the random weights.

    Returns:
        ``path``, loadable with ``StableDiffusionXLPipeline.from_pretrained(path)``.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from layeringdiff.files import atomic_write_bytes

    path = Path(path)
    if is_complete(path):
        return path
    with _building(path, COMPONENTS) as tmp:
        torch.manual_seed(seed)
        UNet2DConditionModel(**UNET_CONFIG).save_pretrained(tmp / "unet")
        AutoencoderKL(**VAE_CONFIG).save_pretrained(tmp / "vae")
        CLIPTextModel(CLIPTextConfig(**_text_config())).save_pretrained(tmp / "text_encoder")
        CLIPTextModelWithProjection(CLIPTextConfig(**_text_config())).save_pretrained(tmp / "text_encoder_2")
        clip_tokenizer.build(tmp / "tokenizer")
        clip_tokenizer.build(tmp / "tokenizer_2")
        atomic_write_bytes(
            tmp / "scheduler" / "scheduler_config.json", json.dumps(SCHEDULER_CONFIG, indent=2).encode()
        )
        index = {
            "_class_name": "StableDiffusionXLPipeline",
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "force_zeros_for_empty_prompt": True,
        }
        atomic_write_bytes(tmp / "model_index.json", json.dumps(index, indent=2).encode())
    return path


@_own_rng
def build_controlnet(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny SDXL ``ControlNetModel`` folder matching :func:`build`'s UNet (idempotent)."""
    from diffusers import ControlNetModel

    path = Path(path)
    if is_complete(path, ()):
        return path
    with _building(path, ()) as tmp:
        torch.manual_seed(seed)
        ControlNetModel(**CONTROLNET_CONFIG).save_pretrained(tmp)
    return path
