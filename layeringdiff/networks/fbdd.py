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
from layeringdiff.errors import UserError
from layeringdiff.files import atomic_dir
from layeringdiff.networks import TRAINED_LAYERS
from layeringdiff.weights import MissingWeightsError, resolve_pretrained

ALPHA_INITS = ("zero", "mask_mean")
CONFIG_NAME = "fbdd_config.json"
NULL_PROMPT_NAME = "null_prompt.safetensors"
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


def _null_prompt_cache(
    pretrained: str | os.PathLike, cache_dir: str | os.PathLike | None
) -> tuple[Path | None, str]:
    """Cache file for a repo's empty-prompt embedding, and the source string stored in its metadata."""
    source = str(Path(pretrained).resolve()) if Path(pretrained).exists() else str(pretrained)
    return (Path(cache_dir) / f"{Path(source).name}.safetensors" if cache_dir else None), source


def _read_null_prompt_cache(cache: Path | None, source: str) -> torch.Tensor | None:
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

    cache, source = _null_prompt_cache(pretrained, cache_dir)
    embeds = _read_null_prompt_cache(cache, source)
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
        cached = _read_null_prompt_cache(*_null_prompt_cache(pretrained, null_prompt_cache)) is not None
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
            scheduler: ``None`` (DDIM), a name from :data:`SAMPLERS`, or a diffusers scheduler
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
