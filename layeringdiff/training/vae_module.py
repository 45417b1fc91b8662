"""``VAEModule``: trains a small ``AutoencoderKL`` from scratch on generator images (LayeringDiff-mini).

The paper's FBDD starts from SD2-inpainting, whose VAE is pretrained. The mini reproduction has no
pretrained weights, so it first trains its own autoencoder on the images FBDD will encode:
composites, foreground layers and background layers. Loss: L1 + L2 on the reconstruction of the
posterior mean (optionally of a posterior sample), plus a small KL term (as in the latent-diffusion
autoencoders, without the perceptual and adversarial terms). Optional random crops make each step cheaper (the network is
convolutional; its latent-resolution attention then sees smaller maps than at export time).

The export is a ``save_pretrained`` folder whose ``scaling_factor`` is 1 / (std of the latents of
the last validation images), so scaled latents have unit variance, as SD's 0.18215 gives for its
VAE. Validation logs ``val/psnr`` (dB, posterior-mean reconstructions of whole images).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

IMAGE_KEYS = ("composite", "foreground", "background")


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1], (B, C, H, W) -> (B,)."""
    mse = ((pred.float() - target.float()) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor) -> torch.Tensor:
    """Posterior-mean reconstruction of images in [0, 1] through an ``AutoencoderKL``."""
    latents = vae.encode(images * 2 - 1).latent_dist.mode()
    return (vae.decode(latents).sample / 2 + 0.5).clamp(0, 1)


def random_crop(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random ``size`` x ``size`` crop per image (the same generator -> the same crops)."""
    h, w = images.shape[-2:]
    if size >= h and size >= w:
        return images
    ys = torch.randint(0, h - size + 1, (images.shape[0],), generator=generator).tolist()
    xs = torch.randint(0, w - size + 1, (images.shape[0],), generator=generator).tolist()
    return torch.stack([im[:, y : y + size, x : x + size] for im, y, x in zip(images, ys, xs)])


class VAEModule(pl.LightningModule):
    """Training of a small ``AutoencoderKL`` on the layers of composite samples.

    Args:
        vae: ``AutoencoderKL`` config (block_out_channels, latent_channels, ...).
        optimizer: partial optimizer (``params`` missing).
        lr_scheduler: optional partial LR scheduler, stepped every optimizer step.
        kl_weight: weight of the KL term (mean over latent elements).
        l2_weight: weight of the MSE term beside L1.
        crop: train on random ``crop`` x ``crop`` crops (``None``: whole images).
        image_keys: which images of a sample to train on.
        noise_seed: seed of the per-step crop and posterior-sample generator.
        sample_posterior: decode a posterior sample (the KL-autoencoder recipe) instead of its mean.
            Off by default: FBDD only ever encodes to the mean, and from scratch the unit-variance
            samples of the initial posterior drown the code for many steps.
    """

    def __init__(
        self,
        vae: dict,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None = None,
        kl_weight: float = 1e-6,
        l2_weight: float = 1.0,
        crop: int | None = None,
        image_keys: Sequence[str] = IMAGE_KEYS,
        noise_seed: int = 0,
        sample_posterior: bool = False,
    ) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        unknown = set(image_keys) - set(IMAGE_KEYS)
        if unknown or not image_keys:
            raise ValueError(f"image_keys={list(image_keys)}; choose among {IMAGE_KEYS}")
        self.vae = AutoencoderKL(**dict(vae))
        self.optimizer_fn, self.lr_scheduler_fn = optimizer, lr_scheduler
        self.latent_std: float | None = None
        self._val_latents: list[torch.Tensor] = []

    def images(self, batch: dict) -> torch.Tensor:
        return torch.cat([batch[k] for k in self.hparams.image_keys]).float()

    def loss(self, images: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """L1, L2 and KL terms of one batch of images in [0, 1], and their weighted sum ``loss``."""
        if self.hparams.crop:
            images = random_crop(images, int(self.hparams.crop), generator)
        x = images * 2 - 1
        dist = self.vae.encode(x).latent_dist
        z = dist.mean
        if self.hparams.sample_posterior:
            z = z + dist.std * torch.randn(dist.mean.shape, generator=generator).to(x.device)
        rec = self.vae.decode(z).sample
        l1 = (rec - x).abs().mean()
        l2 = F.mse_loss(rec, x)
        kl = 0.5 * (dist.mean**2 + dist.var - 1.0 - dist.logvar).mean()
        total = l1 + self.hparams.l2_weight * l2 + self.hparams.kl_weight * kl
        return {"loss": total, "l1": l1, "l2": l2, "kl": kl}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        seed = (self.hparams.noise_seed * 1_000_003 + self.global_step) * 1_009 + batch_idx
        terms = self.loss(self.images(batch), torch.Generator().manual_seed(seed))
        n = batch["alpha"].shape[0]
        for name, value in terms.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=n)
        return terms["loss"]

    def configure_optimizers(self):
        if self.optimizer_fn is None:
            raise ValueError("model.optimizer is not set")
        optimizer = self.optimizer_fn(params=self.vae.parameters())
        if self.lr_scheduler_fn is None:
            return optimizer
        scheduler = self.lr_scheduler_fn(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_validation_epoch_start(self) -> None:
        self._val_latents = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        images = self.images(batch)
        latents = self.vae.encode(images * 2 - 1).latent_dist.mode()
        rec = (self.vae.decode(latents).sample / 2 + 0.5).clamp(0, 1)
        self._val_latents.append(latents.detach().float().cpu())
        self.log("val/psnr", psnr(rec, images).mean(), batch_size=images.shape[0])

    def on_validation_epoch_end(self) -> None:
        if self._val_latents:
            self.latent_std = float(torch.cat(self._val_latents).std())
            self.log("val/latent_std", self.latent_std)
        self._val_latents = []

    def export(self, path: str | os.PathLike) -> Path:
        """Write the VAE with ``save_pretrained`` (atomically) and a unit-variance ``scaling_factor``."""
        from layeringdiff.files import atomic_dir

        if self.latent_std is None or not math.isfinite(self.latent_std) or self.latent_std <= 0:
            raise ValueError(
                "VAE export needs the latent std of a validation run; set trainer.val_check_interval "
                "so that validation runs (e.g. at the last step)"
            )
        self.vae.register_to_config(scaling_factor=1.0 / self.latent_std)
        path = Path(path)
        if path.exists() and not (path / "config.json").is_file():
            raise FileExistsError(f"{path} exists and is not a VAE export; refusing to overwrite it")
        with atomic_dir(path, replace=True) as tmp:
            self.vae.save_pretrained(tmp)
        log.info("VAE exported to %s (scaling_factor %.4f)", path, 1.0 / self.latent_std)
        return path
