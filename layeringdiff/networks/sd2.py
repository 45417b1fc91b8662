"""What FBDD takes from Stable Diffusion 2 inpainting: its architecture, the widened ``conv_in``,
the null-prompt embedding (computed once, cached) and the samplers.

Split from :mod:`layeringdiff.networks.fbdd`, which assembles these into the FBDD model.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from layeringdiff.errors import UserError
from layeringdiff.weights import resolve_pretrained

ALPHA_INITS = ("zero", "mask_mean")
SAMPLERS = ("ddim", "dpmsolver++", "ddpm", "euler")


# Architecture of stabilityai/stable-diffusion-2-inpainting (its unet/ and vae/ config.json), for
# random-init builds in the slow test and the GPU benchmark. Weights are never part of the repo.
SD2_INPAINTING_UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 9,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "use_linear_projection": True,
}
SD2_VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}
SD2_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
}


class FBDDInputError(UserError, ValueError):
    """Inputs or configuration that FBDD cannot work with. The message is one line."""


def vae_factor(vae_config) -> int:
    """Down-sampling factor of an AutoencoderKL: 2 ** (number of blocks - 1) (8 for SD2, 4 for tiny)."""
    return 2 ** (len(vae_config["block_out_channels"]) - 1)


def widen_conv_in(unet, in_channels: int = 72, alpha_init: str = "zero"):
    """Grow an inpainting UNet's conv_in from 9 channels to [latent | composite latent | folded alpha].

    Pretrained weights keep their meaning: the noisy-latent channels stay, the masked-image-latent
    weights move to the composite-latent channels. The mask channel is dropped and the
    ``in_channels - 2 * latent`` new alpha channels are initialised by ``alpha_init``:
    ``"zero"`` (the widened UNet then equals the original one fed a zero mask) or ``"mask_mean"``
    (the mask weights divided evenly across the alpha channels, so a constant alpha ``m`` acts like
    the original fed a constant mask ``m``).

    Args:
        unet: a ``UNet2DConditionModel`` with the 9-channel inpainting input; modified in place.
        in_channels: channels after widening (72 for SD2: 4 + 4 + 8 * 8).
        alpha_init: ``"zero"`` or ``"mask_mean"``.

    Returns:
        The same ``unet``, with ``config.in_channels == in_channels`` (saves and loads as such).
    """
    latent = unet.config.out_channels
    old = unet.conv_in
    if old.in_channels != 2 * latent + 1:
        raise FBDDInputError(
            f"widen_conv_in expects an inpainting UNet with {2 * latent + 1} input channels, got {old.in_channels}"
        )
    if alpha_init not in ALPHA_INITS:
        raise FBDDInputError(f"alpha_init={alpha_init!r}; choose one of {ALPHA_INITS}")
    n_alpha = in_channels - 2 * latent
    if n_alpha < 1:
        raise FBDDInputError(f"in_channels={in_channels} leaves no alpha channels (needs > {2 * latent})")
    new = nn.Conv2d(
        in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, device=old.weight.device
    ).to(old.weight.dtype)
    with torch.no_grad():
        weight = torch.zeros_like(new.weight)
        weight[:, :latent] = old.weight[:, :latent]
        weight[:, latent : 2 * latent] = old.weight[:, latent + 1 : 2 * latent + 1]
        if alpha_init == "mask_mean":
            weight[:, 2 * latent :] = old.weight[:, latent : latent + 1] / n_alpha
        new.weight.copy_(weight)
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


def resolve_sd2(pretrained: str | os.PathLike, need_text_encoder: bool) -> Path:
    """Check the SD2-inpainting folder (local path or HF id) has what FBDD needs, before any work."""
    parts = {"unet": ("config.json",), "vae": ("config.json",), "scheduler": ("scheduler_config.json",)}
    if need_text_encoder:
        parts.update(text_encoder=("config.json",), tokenizer=("vocab.json", "merges.txt"))
    root = None
    for sub, required in parts.items():
        weights = sub in ("unet", "vae", "text_encoder")
        root = resolve_pretrained(pretrained, f"SD2-inpainting {sub}", sub, required, need_weights=weights)
    return root


def compute_null_prompt(pretrained: str | os.PathLike) -> torch.Tensor:
    """Embedding (1, 77, D) of the empty prompt with the repo's tokenizer and text encoder."""
    from transformers import CLIPTextModel, CLIPTokenizer

    root = resolve_sd2(pretrained, need_text_encoder=True)
    tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder").eval()
    ids = tokenizer(
        [""],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        return encoder(ids)[0].float()


def null_prompt_cache_path(
    pretrained: str | os.PathLike, cache_dir: str | os.PathLike | None
) -> tuple[Path | None, str]:
    """Cache file for a repo's empty-prompt embedding, and the source string stored in its metadata."""
    source = str(Path(pretrained).resolve()) if Path(pretrained).exists() else str(pretrained)
    return (Path(cache_dir) / f"{Path(source).name}.safetensors" if cache_dir else None), source


def read_null_prompt_cache(cache: Path | None, source: str) -> torch.Tensor | None:
    from safetensors import safe_open

    if cache is None or not cache.is_file():
        return None
    with safe_open(str(cache), "pt") as f:
        return f.get_tensor("prompt_embeds") if (f.metadata() or {}).get("pretrained") == source else None


def load_null_prompt(
    pretrained: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> torch.Tensor:
    """The empty-prompt embedding, from ``cache_dir`` when cached for this repo, else computed and cached.

    Args:
        pretrained: the SD2-inpainting repo (its tokenizer and text encoder are loaded only on a cache miss).
        cache_dir: folder for ``<repo name>.safetensors``; ``None`` computes without caching.
    """
    from safetensors.torch import save

    from layeringdiff.files import atomic_write_bytes

    cache, source = null_prompt_cache_path(pretrained, cache_dir)
    embeds = read_null_prompt_cache(cache, source)
    if embeds is None:
        embeds = compute_null_prompt(pretrained)
        if cache is not None:
            atomic_write_bytes(cache, save({"prompt_embeds": embeds}, metadata={"pretrained": source}))
    return embeds


def make_scheduler(name: str, config: dict):
    """A diffusers scheduler for sampling, from FBDD's v-prediction noise-schedule config.

    Args:
        name: ``"ddim"``, ``"dpmsolver++"`` (DPMSolverMultistep, 2nd order), ``"ddpm"`` or ``"euler"``.
        config: the training scheduler's config (betas, steps, ``prediction_type``).
    """
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    raise FBDDInputError(f"scheduler={name!r}; choose one of {SAMPLERS} or pass a diffusers scheduler")
