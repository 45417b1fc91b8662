"""The LayeringDiff-mini base repo: an SD2-inpainting-style folder around a trained small VAE.

FBDD is built by ``FBDD.from_sd2_inpainting`` from a folder with ``unet/``, ``vae/``,
``scheduler/``, ``text_encoder/`` and ``tokenizer/``. The mini reproduction writes such a folder
with the classes and layout of ``stabilityai/stable-diffusion-2-inpainting`` (the 9-channel
inpainting UNet, SD2's v-prediction noise schedule, a CLIP text encoder for the null prompt), but a
small randomly initialised UNet and the autoencoder trained by ``experiment=mini_vae``. The mini
FBDD configs then take the paper's code path unchanged: widen the UNet input to
[noisy latent | composite latent | alpha folded by the VAE factor], fine-tune with v-prediction.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from layeringdiff.errors import ConfigError, MissingFileError, OutputExistsError
from layeringdiff.tiny.sd2 import _text_config, is_complete, write_pipeline_files

# The mini UNet (about 4 M parameters): SD2-inpainting's block types at three levels instead of
# four (the 16 x 16 latent of a 64 px image is halved twice), plain convolutions at full latent
# resolution and attention at 8 x 8 and 4 x 4, as SD2 has none of its costliest attention at the
# smallest scale either. in_channels 9 = [noisy latent 4 | mask 1 | masked-image latent 4].
MINI_UNET_CONFIG = {
    "sample_size": 16,
    "in_channels": 9,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64, 128],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4, 8],
    "norm_num_groups": 16,
    "use_linear_projection": True,
}


# The noise schedules a mini base repo can carry. ``sd2`` is SD2's own (scaled-linear betas,
# 1000 steps, "leading" timesteps). ``zero_snr`` is the same betas rescaled to zero terminal SNR with
# "trailing" timesteps (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
# flawed"; both are diffusers scheduler options): SD2's x_999 keeps 6.8% of the layer's signal,
# which a UNet trained from scratch learns to read, while sampling starts from pure noise, and
# leading spacing starts sampling at t = 951 with x_t treated as if it were x_999 (docs/mini.md).
# A real SD2 base already learned its schedule; a base trained from scratch can choose.
SCHEDULES = {
    "sd2": {},
    "zero_snr": {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"},
}


def build_repo(
    path: str | os.PathLike,
    vae_dir: str | os.PathLike,
    unet_config: dict | None = None,
    seed: int = 0,
    schedule: str = "zero_snr",
) -> Path:
    """Write the mini SD2-inpainting folder at ``path`` around the VAE saved in ``vae_dir``.

    Idempotent: a complete folder is kept. Written beside ``path`` and renamed into place.

    Args:
        path: the repo folder to write.
        vae_dir: an ``AutoencoderKL.save_pretrained`` folder (``config.json`` + weights).
        unet_config: the 9-channel inpainting UNet config (default :data:`MINI_UNET_CONFIG`).
        seed: seed of the random UNet and text-encoder weights.
        schedule: a key of :data:`SCHEDULES`, written to ``scheduler/scheduler_config.json``;
            FBDD trains and samples with it (its export carries it on).
    """
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from layeringdiff.files import atomic_dir

    path, vae_dir = Path(path), Path(vae_dir)
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}")
    if is_complete(path):
        return path
    if not (vae_dir / "config.json").is_file():
        raise MissingFileError(f"{vae_dir}: no VAE export (config.json missing); train it first")
    if path.exists():
        raise OutputExistsError(f"{path} exists but is not a complete SD2-style repo; remove it to rebuild")
    config = dict(unet_config or MINI_UNET_CONFIG)
    vae_config = json.loads((vae_dir / "config.json").read_text())
    if config["out_channels"] != vae_config["latent_channels"]:
        raise ConfigError(
            f"UNet out_channels {config['out_channels']} != VAE latent_channels {vae_config['latent_channels']}"
        )
    with atomic_dir(path) as tmp:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            UNet2DConditionModel(**config).save_pretrained(tmp / "unet")
            text = CLIPTextConfig(**{**_text_config(), "hidden_size": config["cross_attention_dim"]})
            CLIPTextModel(text).save_pretrained(tmp / "text_encoder")
        shutil.copytree(vae_dir, tmp / "vae")
        write_pipeline_files(tmp, SCHEDULES[schedule])
    return path
