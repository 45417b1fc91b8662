"""A tiny, randomly initialised Stable Diffusion 2 inpainting repo folder.

Same layout and classes as ``stabilityai/stable-diffusion-2-inpainting`` (``unet/``, ``vae/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``, ``model_index.json``), so it loads through
``layeringdiff.weights`` and the real ``from_pretrained`` code. The UNet takes the 9-channel
inpainting input [noisy latent 4 | mask 1 | masked-image latent 4]; the VAE has three blocks,
so its factor is 2 ** (3 - 1) = 4 (the real one: 8). Outputs are meaningless.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from layeringdiff.networks.sd2 import SD2_SCHEDULER_CONFIG
from layeringdiff.tiny import clip_tokenizer

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

# The real repo's noise schedule (FBDD's SD2 schedule: scaled-linear betas 0.00085..0.012 over 1000
# steps) in the repo's PNDM form. FBDD always trains and samples with v-prediction whatever it says.
SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    **SD2_SCHEDULER_CONFIG,
    "skip_prk_steps": True,
    "trained_betas": None,
}

UNET_CONFIG = {
    "sample_size": 16,
    "in_channels": 9,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4],
    "norm_num_groups": 8,
    "use_linear_projection": True,
}

VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [16, 32, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 64,
    "scaling_factor": 0.18215,
}


def _text_config() -> dict:
    return {
        "vocab_size": clip_tokenizer.vocab_size(),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "projection_dim": 32,
        **clip_tokenizer.special_token_ids(),
    }


def is_complete(path: str | os.PathLike) -> bool:
    """True when every component folder and ``model_index.json`` of a tiny repo exist."""
    path = Path(path)
    return (path / "model_index.json").is_file() and all((path / c).is_dir() for c in COMPONENTS)


def write_pipeline_files(root: Path, scheduler_overrides: dict | None = None) -> None:
    """The tokenizer, scheduler config and ``model_index.json`` of an SD2-inpainting repo folder
    (the weights of ``unet/``, ``vae/`` and ``text_encoder/`` are the caller's).
    ``scheduler_overrides`` are merged into SD2's scheduler config."""
    import diffusers

    from layeringdiff.files import atomic_write_bytes

    clip_tokenizer.build(root / "tokenizer")
    config = json.dumps({**SCHEDULER_CONFIG, **(scheduler_overrides or {})}, indent=2).encode()
    atomic_write_bytes(root / "scheduler" / "scheduler_config.json", config)
    index = {
        "_class_name": "StableDiffusionInpaintPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"],
    }
    atomic_write_bytes(root / "model_index.json", json.dumps(index, indent=2).encode())


def build(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny SD2-inpainting folder at ``path`` (idempotent: a complete folder is kept).

    Args:
        path: the repo folder to write, e.g. ``${paths.cache_dir}/tiny/sd2_inpainting``.
        seed: seed for the random weights.

    Returns:
        ``path``, loadable like the real repo.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from layeringdiff.files import atomic_dir

    path = Path(path)
    if is_complete(path):
        return path
    if path.exists():
        raise FileExistsError(f"{path} exists but is not a complete tiny SD2 repo; remove it to rebuild")
    # Build beside the target and rename, so a crash or a concurrent builder never leaves half a repo.
    try:
        with atomic_dir(path) as tmp:
            with torch.random.fork_rng(
                devices=[]
            ):  # leave the caller's (e.g. the trainer's seeded) RNG alone
                torch.manual_seed(seed)
                UNet2DConditionModel(**UNET_CONFIG).save_pretrained(tmp / "unet")
                AutoencoderKL(**VAE_CONFIG).save_pretrained(tmp / "vae")
                CLIPTextModel(CLIPTextConfig(**_text_config())).save_pretrained(tmp / "text_encoder")
            write_pipeline_files(tmp)
    except OSError:  # another process finished first
        if not is_complete(path):
            raise
    return path
