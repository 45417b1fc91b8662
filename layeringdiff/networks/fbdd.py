"""FBDD: the latent-diffusion UNet that decomposes a composite into one layer (F or B).

Built from the Stable Diffusion 2 inpainting UNet. Its 9-channel input
[noisy latent 4 | mask 1 | masked-image latent 4] (the order of diffusers'
``StableDiffusionInpaintPipeline``) becomes [noisy latent 4 | composite latent 4 | alpha f*f],
where the alpha is pixel-unshuffled by the VAE factor f (8 for SD2: 4 + 4 + 64 = 72 channels).
Text conditioning is one fixed embedding of the empty prompt, computed once and stored with the
model. Training predicts v (``prediction_type="v_prediction"``) whatever the base repo says.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
from pathlib import Path

import torch
from torch import nn

from layeringdiff.compositing import unshuffle_alpha
from layeringdiff.files import atomic_dir
from layeringdiff.networks import TRAINED_LAYERS
from layeringdiff.networks.sd2 import (
    FBDDInputError,
    load_null_prompt,
    make_scheduler,
    null_prompt_cache_path,
    read_null_prompt_cache,
    resolve_sd2,
    vae_factor,
    widen_conv_in,
)
from layeringdiff.weights import MissingWeightsError, resolve_pretrained

CONFIG_NAME = "fbdd_config.json"
NULL_PROMPT_NAME = "null_prompt.safetensors"


class FBDD(nn.Module):
    """One layer model (foreground or background): widened UNet + frozen VAE + null prompt.

    Args:
        unet: ``UNet2DConditionModel`` whose ``in_channels`` is 2 * latent + factor ** 2.
        vae: ``AutoencoderKL``; frozen.
        scheduler_config: noise-schedule config (forced to ``prediction_type="v_prediction"``).
        null_prompt_embeds: (1, L, D) empty-prompt embedding.
        layer: ``"foreground"`` or ``"background"``.
        meta: extra facts stored in the export's ``fbdd_config.json`` (base repo, alpha_init, ...).
    """

    def __init__(
        self, unet, vae, scheduler_config: dict, null_prompt_embeds: torch.Tensor, layer: str, meta=None
    ):
        super().__init__()
        from diffusers import DDPMScheduler

        if layer not in TRAINED_LAYERS:
            raise FBDDInputError(f"layer={layer!r}; choose one of {TRAINED_LAYERS}")
        self.layer = layer
        self.unet, self.vae = unet, vae.eval().requires_grad_(False)
        self.meta = dict(meta or {})
        self.vae_factor = vae_factor(vae.config)
        self.latent_channels = vae.config.latent_channels
        expected = 2 * self.latent_channels + self.vae_factor**2
        if unet.config.in_channels != expected:
            raise FBDDInputError(
                f"UNet has {unet.config.in_channels} input channels; FBDD with this VAE (factor {self.vae_factor}) "
                f"needs {expected} = 2 x {self.latent_channels} latent + {self.vae_factor}^2 alpha"
            )
        if null_prompt_embeds.shape[-1] != unet.config.cross_attention_dim:
            raise FBDDInputError(
                f"null prompt width {null_prompt_embeds.shape[-1]} != UNet cross_attention_dim "
                f"{unet.config.cross_attention_dim}"
            )
        self.register_buffer(
            "null_prompt_embeds", null_prompt_embeds.reshape(1, *null_prompt_embeds.shape[-2:])
        )
        config = {k: v for k, v in dict(scheduler_config).items() if not k.startswith("_")}
        # Latents are not confined to [-1, 1]: never clip the x0 estimate (DDPM/DDIM default to clipping
        # when a repo's config does not say clip_sample: false).
        self.noise_scheduler = DDPMScheduler.from_config(
            {**config, "prediction_type": "v_prediction", "clip_sample": False}
        )
        # Latents and alpha must survive the UNet's down-sampling.
        self.size_multiple = self.vae_factor * 2 ** (len(unet.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    # -- building ---------------------------------------------------------------------------------------
    @classmethod
    def from_sd2_inpainting(
        cls,
        pretrained: str | os.PathLike,
        layer: str,
        alpha_init: str = "zero",
        in_channels: int | None = None,
        null_prompt_cache: str | os.PathLike | None = None,
    ) -> FBDD:
        """The untrained layer model: SD2-inpainting UNet widened for alpha, its VAE and null prompt.

        Args:
            pretrained: the SD2-inpainting repo (local folder or HF id in the local cache).
            layer: ``"foreground"`` or ``"background"``.
            alpha_init: init of the new alpha channels (see :func:`widen_conv_in`).
            in_channels: widened input channels; ``None`` derives 2 * latent + factor ** 2 from the VAE
                config. A value that disagrees raises :class:`FBDDInputError`.
            null_prompt_cache: folder where the empty-prompt embedding is cached (text encoder loaded
                only when the cache is missing).
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel

        if layer not in TRAINED_LAYERS:
            raise FBDDInputError(f"layer={layer!r}; choose one of {TRAINED_LAYERS}")
        cached = read_null_prompt_cache(*null_prompt_cache_path(pretrained, null_prompt_cache)) is not None
        root = resolve_sd2(pretrained, need_text_encoder=not cached)
        vae_config = AutoencoderKL.load_config(root, subfolder="vae")
        unet_config = UNet2DConditionModel.load_config(root, subfolder="unet")
        derived = 2 * unet_config["out_channels"] + vae_factor(vae_config) ** 2
        if in_channels is not None and in_channels != derived:
            raise FBDDInputError(
                f"in_channels={in_channels} but the VAE config (factor {vae_factor(vae_config)}) gives "
                f"{derived} = 2 x {unet_config['out_channels']} + {vae_factor(vae_config)}^2; use null or {derived}"
            )
        if unet_config["in_channels"] != 2 * unet_config["out_channels"] + 1:
            raise FBDDInputError(
                f"{root}/unet has in_channels={unet_config['in_channels']}; FBDD starts from the 9-channel "
                "SD2 inpainting UNet"
            )
        null_prompt = load_null_prompt(pretrained, null_prompt_cache)
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae")
        scheduler_config = _read_json(root / "scheduler" / "scheduler_config.json")
        widen_conv_in(unet, derived, alpha_init)
        meta = {"base": str(pretrained), "alpha_init": alpha_init, "vae_source": str(pretrained)}
        return cls(unet, vae, scheduler_config, null_prompt, layer, meta)

    @classmethod
    def from_config(
        cls,
        unet_config: dict,
        vae_config: dict,
        scheduler_config: dict,
        layer: str = "foreground",
        alpha_init: str = "zero",
    ) -> FBDD:
        """Randomly initialised FBDD of a given architecture (no weights; tests and benchmarks).

        Args:
            unet_config: a 9-channel inpainting ``UNet2DConditionModel`` config (e.g.
                :data:`SD2_INPAINTING_UNET_CONFIG`); widened here.
            vae_config: ``AutoencoderKL`` config (e.g. :data:`SD2_VAE_CONFIG`).
            scheduler_config: noise-schedule config.
            layer: ``"foreground"`` or ``"background"``.
            alpha_init: see :func:`widen_conv_in`.
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel

        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**vae_config)
        latent = unet.config.out_channels
        widen_conv_in(unet, 2 * latent + vae_factor(vae.config) ** 2, alpha_init)
        null_prompt = torch.zeros(1, 77, unet.config.cross_attention_dim)
        return cls(
            unet, vae, scheduler_config, null_prompt, layer, {"base": "random init", "alpha_init": alpha_init}
        )

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> FBDD:
        """Restore an exported layer model (see :meth:`save_pretrained`); never loads a text encoder."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from safetensors.torch import load_file

        root = resolve_pretrained(
            path, "FBDD export", required=(CONFIG_NAME, NULL_PROMPT_NAME), need_weights=False
        )
        resolve_pretrained(root, "FBDD export unet", "unet", ("config.json",))
        resolve_pretrained(
            root, "FBDD export scheduler", "scheduler", ("scheduler_config.json",), need_weights=False
        )
        config = _read_json(root / CONFIG_NAME)
        if config.get("vae", "vae") == "vae":
            vae_root = resolve_pretrained(root, "FBDD export vae", "vae")
        else:
            vae_root = resolve_pretrained(config["vae"], "FBDD VAE (referenced by the export)", "vae")
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(vae_root, subfolder="vae")
        null_prompt = load_file(str(root / NULL_PROMPT_NAME))["prompt_embeds"]
        scheduler_config = _read_json(root / "scheduler" / "scheduler_config.json")
        meta = {k: v for k, v in config.items() if k not in ("layer", "vae")}
        meta["vae_source"] = str(vae_root)
        return cls(unet, vae, scheduler_config, null_prompt, config["layer"], meta)

    def save_pretrained(self, path: str | os.PathLike, include_vae: bool = True) -> Path:
        """Write ``unet/``, ``scheduler/``, ``vae/`` (or a reference to it), the null prompt and config.

        Args:
            path: the export folder; written through a temporary sibling and a rename.
            include_vae: copy the VAE into ``vae/``; otherwise ``fbdd_config.json`` names its source
                (the base repo), which must then be available where the export is loaded.
        """
        from safetensors.torch import save_file

        path = Path(path)
        if path.exists() and not (path / CONFIG_NAME).is_file():
            raise FileExistsError(f"{path} exists and is not an FBDD export; refusing to overwrite it")
        config = {
            **{k: v for k, v in self.meta.items() if k != "vae_source"},
            "layer": self.layer,
            "vae": "vae" if include_vae else self.meta.get("vae_source"),
            "vae_factor": self.vae_factor,
            "in_channels": self.unet.config.in_channels,
            "input_layout": "noisy latent | composite latent | alpha pixel-unshuffled by vae_factor",
        }
        with atomic_dir(path, replace=True) as tmp:  # replaces only an earlier export (checked above)
            self.unet.save_pretrained(tmp / "unet")
            self.noise_scheduler.save_pretrained(tmp / "scheduler")
            if include_vae:
                self.vae.save_pretrained(tmp / "vae")
            save_file(
                {"prompt_embeds": self.null_prompt_embeds.detach().float().cpu().contiguous()},
                tmp / NULL_PROMPT_NAME,
            )
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        return path

    def with_unet(self, unet) -> FBDD:
        """The same model with another UNet (e.g. the EMA weights); VAE and buffers are shared."""
        other = copy.copy(self)
        other._modules = {**self._modules, "unet": unet}
        return other

    # -- the network -----------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) -> scaled latents (the posterior mean, deterministic)."""
        dist = self.vae.encode(images.to(self.vae.dtype) * 2 - 1).latent_dist
        return dist.mode() * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [0, 1]."""
        images = self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor).sample
        return (images.float() / 2 + 0.5).clamp(0, 1)

    def fold_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) alpha -> (B, f*f, H/f, W/f), the latent-resolution alpha channels."""
        return unshuffle_alpha(alpha, self.vae_factor)

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        composite_latents: torch.Tensor,
        folded_alpha: torch.Tensor,
    ) -> torch.Tensor:
        """Predict v from the noisy layer latent, conditioned on the composite latent and alpha."""
        dtype = self.unet.dtype  # the schedule math stays float32 outside; bf16/fp16 UNets get their dtype
        x = torch.cat([noisy_latents, composite_latents, folded_alpha], dim=1).to(dtype)
        context = self.null_prompt_embeds.expand(x.shape[0], -1, -1).to(dtype)
        return self.unet(x, timesteps, encoder_hidden_states=context).sample

    # -- sampling --------------------------------------------------------------------------------------
    def check_inputs(self, composite: torch.Tensor, alpha: torch.Tensor) -> None:
        """Raise :class:`FBDDInputError` (one line) unless composite/alpha fit the model."""
        if composite.ndim != 4 or composite.shape[1] != 3:
            raise FBDDInputError(f"composite must be (B, 3, H, W), got {tuple(composite.shape)}")
        if alpha.ndim != 4 or alpha.shape[1] != 1:
            raise FBDDInputError(f"alpha must be (B, 1, H, W), got {tuple(alpha.shape)}")
        if alpha.shape[0] != composite.shape[0] or alpha.shape[-2:] != composite.shape[-2:]:
            raise FBDDInputError(
                f"alpha {tuple(alpha.shape)} does not match composite {tuple(composite.shape)}"
            )
        h, w = composite.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise FBDDInputError(
                f"image size {h}x{w} must be a multiple of {self.size_multiple} for this model"
            )

    @torch.no_grad()
    def decompose(
        self,
        composite: torch.Tensor,
        alpha: torch.Tensor,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        scheduler=None,
        composite_latents: torch.Tensor | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Sample this model's layer (F or B) of a composite.

        Args:
            composite: (B, 3, H, W) in [0, 1]; H, W multiples of ``self.size_multiple``.
            alpha: (B, 1, H, W) in [0, 1].
            num_inference_steps: sampler steps.
            generator: seeds the initial noise (and stochastic samplers); same seed -> same layer.
            scheduler: ``None`` (DDIM), a name from :data:`~layeringdiff.networks.sd2.SAMPLERS`, or a diffusers scheduler
                instance configured for v-prediction.
            composite_latents: the composite's scaled latents if already known (skips the encoder).
            progress: show a progress bar over the sampler steps.

        Returns:
            The layer, (B, 3, H, W) float in [0, 1], on the composite's device.
        """
        self.check_inputs(composite, alpha)
        if scheduler is None or isinstance(scheduler, str):
            scheduler = make_scheduler(scheduler or "ddim", dict(self.noise_scheduler.config))
        if scheduler.config.get("prediction_type") != "v_prediction":
            raise FBDDInputError(
                f"{type(scheduler).__name__} predicts {scheduler.config.prediction_type}; FBDD needs v_prediction"
            )
        device = composite.device
        # 1. condition: composite latent and folded alpha
        cond = self.encode(composite) if composite_latents is None else composite_latents
        cond = cond.float()
        folded = self.fold_alpha(alpha.to(device))
        # 2. initial noise (drawn on the generator's device, so a CPU generator gives the same noise anywhere).
        # The sampler state stays float32 (also with a bf16/fp16 UNet); forward() casts the UNet input.
        scheduler.set_timesteps(num_inference_steps, device=device)
        noise_device = generator.device if generator is not None else device
        latents = torch.randn(cond.shape, generator=generator, device=noise_device).to(device)
        latents = latents * scheduler.init_noise_sigma
        step_kwargs = (
            {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        )
        # 3. denoise
        from tqdm.auto import tqdm

        for t in tqdm(scheduler.timesteps, desc=f"FBDD {self.layer}", disable=not progress, leave=False):
            v = self(scheduler.scale_model_input(latents, t), t, cond, folded)
            latents = scheduler.step(v.float(), t, latents, return_dict=False, **step_kwargs)[0]
        # 4. decode
        return self.decode(latents).to(device)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MissingWeightsError(f"{path} is missing") from None
    except json.JSONDecodeError as e:
        raise FBDDInputError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
