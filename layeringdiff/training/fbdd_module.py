"""``FBDDModule``: fine-tunes one FBDD layer UNet (foreground or background) with the v-prediction loss.

The VAE is frozen; when a batch carries cached latents (``latent_composite`` and
``latent_foreground`` / ``latent_background`` from ``data/encode_latents.py``) the VAE encoder
is never run. Noise and timesteps come from a generator seeded by (seed, step, batch index), so a
resumed run draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from layeringdiff.networks.fbdd import FBDD, FBDDInputError
from layeringdiff.training.grids import labelled_grid, log_grid
from layeringdiff.training.speed import apply_speed_options

log = logging.getLogger(__name__)


def min_snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights for v-prediction: min(SNR, gamma) / (SNR + 1) (Hang et al., 2023)."""
    abar = alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = abar / (1 - abar)
    return snr.clamp(max=gamma) / (snr + 1)


class FBDDModule(pl.LightningModule):
    """Training of one FBDD layer model.

    Args:
        pretrained: SD2-inpainting repo (local folder or HF id in the local cache).
        layer: ``"foreground"`` or ``"background"``: the layer this UNet learns to produce.
        alpha_init: init of the widened alpha channels, ``"zero"`` or ``"mask_mean"``.
        in_channels: widened UNet input channels; ``None`` derives them from the VAE config.
        build_tiny: first write a tiny random SD2 repo at ``pretrained`` (smoke runs only).
        null_prompt_cache: folder caching the empty-prompt embedding (text encoder loaded once).
        optimizer: partial optimizer (``params`` missing).
        lr_scheduler: optional partial LR scheduler, stepped every optimizer step.
        min_snr_gamma: enable min-SNR loss weighting with this gamma (``None``: plain MSE).
        ema_decay: keep an EMA of the UNet with this decay, used for validation and export.
        gradient_checkpointing: trade compute for memory in the UNet.
        attention: ``"sdpa"`` (PyTorch scaled_dot_product_attention) or ``"eager"``.
        compile_unet: ``torch.compile`` the UNet (true or a dict of its arguments); off by default.
        channels_last: UNet weights in channels-last memory format; off by default
            (both in :mod:`layeringdiff.training.speed`, with the 8-bit AdamW optimizer).
        noise_seed: seed of the per-step noise/timestep generator.
        val_scheduler: sampler for validation: ``"ddim"``, ``"dpmsolver++"``, ...
        val_steps: sampler steps in validation.
        val_max_images: validation images sampled per validation run (first batches only).
        val_seed: seed of the validation noise.
        val_companion: an exported FBDD of the OTHER layer (e.g. the finished foreground model while
            training the background one); when set, validation grids show both F_hat and B_hat.
        export_vae: copy the VAE into the export folder (else reference the base repo).
        fbdd: an already built model (random-init real architecture in the slow test and benchmark);
            ``pretrained`` and the other build arguments are then unused.
    """

    def __init__(
        self,
        pretrained: str,
        layer: str = "foreground",
        alpha_init: str = "zero",
        in_channels: int | None = None,
        build_tiny: bool = False,
        null_prompt_cache: str | None = None,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None = None,
        min_snr_gamma: float | None = None,
        ema_decay: float | None = None,
        gradient_checkpointing: bool = False,
        attention: str = "sdpa",
        compile_unet: bool | dict = False,
        channels_last: bool = False,
        noise_seed: int = 0,
        val_scheduler: str = "ddim",
        val_steps: int = 20,
        val_max_images: int = 4,
        val_seed: int = 0,
        val_companion: str | None = None,
        export_vae: bool = True,
        fbdd: FBDD | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "fbdd"])
        if fbdd is None:
            if build_tiny:
                from layeringdiff.tiny import sd2

                sd2.build(pretrained)
            fbdd = FBDD.from_sd2_inpainting(pretrained, layer, alpha_init, in_channels, null_prompt_cache)
        elif fbdd.layer != layer:
            raise FBDDInputError(f"the given FBDD model produces {fbdd.layer}, not {layer}")
        self.fbdd = fbdd
        self.fbdd.unet.train()  # diffusers loads in eval mode; the VAE stays frozen in eval mode
        self.layer = layer
        self.optimizer_fn, self.lr_scheduler_fn = optimizer, lr_scheduler
        if attention not in ("sdpa", "eager"):
            raise FBDDInputError(f"attention={attention!r}; choose 'sdpa' or 'eager'")
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        self.fbdd.unet.set_attn_processor(AttnProcessor2_0() if attention == "sdpa" else AttnProcessor())
        if gradient_checkpointing:
            self.fbdd.unet.enable_gradient_checkpointing()
        self.ema = None
        if ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.fbdd.unet, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
            self.ema.requires_grad_(False)
        apply_speed_options(self.fbdd.unet, compile_unet, channels_last)  # after the EMA copy
        # Not a submodule: it is neither trained nor saved in checkpoints.
        self._companion = [FBDD.from_pretrained(val_companion).eval()] if val_companion else []
        if self._companion and self._companion[0].layer == layer:
            raise FBDDInputError(
                f"val_companion {val_companion} produces {layer} too; it must be the other layer"
            )
        self._val_images: list[dict[str, torch.Tensor]] = []

    # -- data ------------------------------------------------------------------------------------------
    def latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled float32 composite and target-layer latents, from the cache when the batch has them."""
        key = f"latent_{self.layer}"
        if "latent_composite" in batch and key in batch:
            comp, target = batch["latent_composite"], batch[key]
            expected = (
                self.fbdd.latent_channels,
                *(s // self.fbdd.vae_factor for s in batch["alpha"].shape[-2:]),
            )
            for name, lat in (("latent_composite", comp), (key, target)):
                if tuple(lat.shape[1:]) != expected:
                    raise FBDDInputError(
                        f"cached {name} has shape {tuple(lat.shape[1:])}, expected {expected} for "
                        f"{tuple(batch['alpha'].shape[-2:])} images (stale latent cache?)"
                    )
            comp, target = comp * self.fbdd.scaling_factor, target * self.fbdd.scaling_factor
        else:
            with torch.no_grad():
                comp, target = self.fbdd.encode(batch["composite"]), self.fbdd.encode(batch[self.layer])
        # float32 whatever the VAE / autocast gave: the scheduler casts alphas_cumprod to the latents'
        # dtype, and in bf16 sqrt(1 - abar_t) is 0 for the smallest t (noise and v target wrong).
        return comp.float(), target.float()

    def _generator(self, batch_idx: int) -> torch.Generator:
        """Noise for (seed, optimizer step, batch index, rank): a resumed run draws the same."""
        seed = (
            (self.hparams.noise_seed * 1_000_003 + self.global_step) * 1_009 + batch_idx
        ) * 101 + self.global_rank
        return torch.Generator(device=self.device).manual_seed(seed)

    # -- training --------------------------------------------------------------------------------------
    def loss(self, batch: dict, batch_idx: int = 0) -> torch.Tensor:
        """v-prediction MSE (optionally min-SNR weighted) on one batch, with this step's seeded noise."""
        comp, target = self.latents(batch)
        folded = self.fbdd.fold_alpha(batch["alpha"])
        gen = self._generator(batch_idx)
        noise = torch.randn(target.shape, generator=gen, device=self.device)
        t = torch.randint(
            0,
            self.fbdd.noise_scheduler.config.num_train_timesteps,
            (target.shape[0],),
            generator=gen,
            device=self.device,
        )
        return self.v_loss(target, comp, folded, noise, t)

    def v_loss(self, target, comp, folded, noise, t) -> torch.Tensor:
        """MSE between the UNet's v and the scheduler's ``get_velocity`` at timesteps ``t``."""
        sched = self.fbdd.noise_scheduler
        noisy = sched.add_noise(target, noise, t)
        v_target = sched.get_velocity(target, noise, t)
        v_pred = self.fbdd(noisy, t, comp, folded)
        per_sample = F.mse_loss(v_pred.float(), v_target.float(), reduction="none").mean(dim=(1, 2, 3))
        if self.hparams.min_snr_gamma:
            per_sample = per_sample * min_snr_weights(sched.alphas_cumprod, t, self.hparams.min_snr_gamma)
        return per_sample.mean()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["alpha"].shape[0])
        return loss

    def setup(self, stage: str) -> None:
        # The data module is set up before the model: refuse an empty training set before any work.
        build = getattr(self.trainer.datamodule, "build", None) if self.trainer.datamodule else None
        if stage == "fit" and callable(build):
            data = build("train")
            if hasattr(data, "__len__") and len(data) == 0:
                raise FBDDInputError(
                    "the training data set is empty (0 samples): check the data paths and data.num_train"
                )

    def on_train_start(self) -> None:
        if self.trainer.num_training_batches == 0:
            raise FBDDInputError(
                "the training data set is empty (0 batches): check data paths, num_train and batch_size"
            )

    def optimizer_step(self, *args, **kwargs) -> None:
        # The EMA follows each optimizer step here, before the batch-end callbacks: a checkpoint saved
        # at step k (ModelCheckpoint runs on batch end) holds the EMA of step k, so a resumed run's EMA
        # equals the uninterrupted run's (updating in on_train_batch_end left every checkpoint one behind).
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update_parameters(self.fbdd.unet)

    def configure_optimizers(self):
        if self.optimizer_fn is None:
            raise FBDDInputError("model.optimizer is not set")
        optimizer = self.optimizer_fn(params=[p for p in self.fbdd.unet.parameters() if p.requires_grad])
        if self.lr_scheduler_fn is None:
            return optimizer
        scheduler = self.lr_scheduler_fn(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- validation ------------------------------------------------------------------------------------
    def sampling_model(self) -> FBDD:
        """The FBDD used for sampling and export: EMA weights when EMA is on."""
        return self.fbdd if self.ema is None else self.fbdd.with_unet(self.ema.module)

    def on_validation_epoch_start(self) -> None:
        self._val_images = []
        self._val_count = 0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        budget = self.hparams.val_max_images - self._val_count
        if budget <= 0:
            return
        n = min(budget, batch["alpha"].shape[0])
        comp, alpha, gt = batch["composite"][:n], batch["alpha"][:n], batch[self.layer][:n]
        cached = batch.get("latent_composite")
        sample = dict(
            num_inference_steps=self.hparams.val_steps,
            scheduler=self.hparams.val_scheduler,
            composite_latents=None if cached is None else cached[:n] * self.fbdd.scaling_factor,
        )
        seed = self.hparams.val_seed + batch_idx
        gen = torch.Generator(device=self.device).manual_seed(seed)
        layers = {self.layer: self.sampling_model().decompose(comp, alpha, generator=gen, **sample)}
        for other in self._companion:
            other.to(self.device)
            gen = torch.Generator(device=self.device).manual_seed(seed)
            layers[other.layer] = other.decompose(comp, alpha, generator=gen, **sample)
        self._val_count += n
        pred = layers[self.layer]
        self.log("val/mad", (pred - gt).abs().mean(), batch_size=n, sync_dist=True)
        self.log("val/mse", ((pred - gt) ** 2).mean(), batch_size=n, sync_dist=True)
        row = {"composite": comp, "alpha": alpha, "foreground": batch["foreground"][:n]}
        row.update(background=batch["background"][:n], **{f"{k}_hat": v for k, v in layers.items()})
        self._val_images.append(row)

    def on_validation_epoch_end(self) -> None:
        if not self._val_images or self.trainer.sanity_checking:
            return
        grid = layer_grid(self._val_images)
        self._val_images = []
        log_grid(self, grid, f"val/grid_{self.layer}")

    # -- checkpoints -----------------------------------------------------------------------------------
    # The frozen VAE is rebuilt from `pretrained` with the module, so checkpoints leave it out
    # (about 335 MB per checkpoint at paper size) and loading puts the module's own copy back.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("fbdd.vae.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # ckpt_path=last picks the newest checkpoint of the task, which may be the other layer's run.
        saved = checkpoint.get("hyper_parameters", {}).get("layer", self.layer)
        if saved != self.layer:
            raise FBDDInputError(
                f"the checkpoint trains the {saved} model but model.layer={self.layer}; pass its ckpt_path explicitly"
            )
        state = checkpoint["state_dict"]
        for key, value in self.fbdd.vae.state_dict().items():
            state.setdefault(f"fbdd.vae.{key}", value)

    # -- export ----------------------------------------------------------------------------------------
    def export(self, path: str | os.PathLike) -> Path:
        """Write the trained layer model as a folder that ``FBDD.from_pretrained(path)`` restores."""
        out = self.sampling_model().save_pretrained(path, include_vae=self.hparams.export_vae)
        log.info("FBDD %s model exported to %s", self.layer, out)
        return out


GRID_COLUMNS = ["composite", "alpha", "F_hat", "B_hat", "F (gt)", "B (gt)"]


def layer_grid(rows: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """A header row naming the columns, then one row per image: composite | alpha | F_hat | B_hat |
    F | B (ground truth), as (3, H', W').

    A layer no model predicted (the other layer, without ``val_companion``) is a grey tile.
    """
    tiles = []
    for r in rows:
        blank = torch.full_like(r["composite"], 0.5)
        columns = [r["composite"], r["alpha"].expand(-1, 3, -1, -1)]
        columns += [
            r.get("foreground_hat", blank),
            r.get("background_hat", blank),
            r["foreground"],
            r["background"],
        ]
        for i in range(r["composite"].shape[0]):
            tiles += [c[i] for c in columns]
    return labelled_grid(tiles, GRID_COLUMNS)
