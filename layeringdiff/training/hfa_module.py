"""``HFAModule``: trains FAN (foreground) or BAN (background) on FBDD outputs (docs/hfa.md).

Losses (after the copy-through, so the loss sees exactly what inference returns):
FAN ``MSE(F, F_gt)``; BAN ``MSE(B, B_gt) + haar_weight * haar_highfreq_loss(B, B_hat)``.
The FBDD layer comes from the sidecars ``fbdd_foreground`` / ``fbdd_background``
(``input_mode="sidecar"``, the paper's setting, written by data/cache_fbdd_outputs.py) or is made
on the fly from the ground truth by :func:`~layeringdiff.networks.hfa.degrade_like_fbdd`
(``input_mode="degrade"``, a development aid only).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from layeringdiff.data.splits import stable_seed
from layeringdiff.errors import ConfigError
from layeringdiff.networks.haar import HAAR_LEVELS, HAAR_WEIGHT, haar_highfreq_loss
from layeringdiff.networks.hfa import COPY_THRESHOLD, HFANet, copy_through, degrade_like_fbdd, normalize_layer
from layeringdiff.training.grids import labelled_grid, log_grid

log = logging.getLogger(__name__)

INPUT_MODES = ("sidecar", "degrade")
# Validation metrics per region: "" = whole image; BAN also visible (alpha == 0) / occluded (alpha > 0).
REGIONS = {"foreground": ("",), "background": ("", "_visible", "_occluded")}


class HFAModule(pl.LightningModule):
    """Lightning wrapper of one HFA network.

    Args:
        net: the :class:`HFANet` to train (its ``config.layer`` must match ``layer``).
        layer: "foreground"/"fan" or "background"/"ban".
        optimizer: partial optimizer, called with the parameters.
        lr_scheduler: optional partial LR scheduler (stepped every step).
        ema_decay: keep an EMA of the net with this decay, updated every optimizer step and used for
            validation and export (``None``: off). Not in the paper; checkpoints hold it, so a resumed
            run continues it exactly.
        haar_weight: lambda of the BAN loss (0.2 in the paper); unused for FAN.
        haar_levels: Haar scales of L_H (3 in the paper).
        input_mode: "sidecar" (FBDD outputs cached beside the data) or "degrade" (synthesised).
        degrade_seed: seed of the degrade mode (train: + step + sample keys; val: + sample keys).
        copy_threshold: see :func:`layeringdiff.networks.hfa.copy_through`.
        lpips: "auto" (the real AlexNet trunk when torchvision's file is present, else a random
            trunk, with a warning in the log) or "off".
        num_grid_images: validation images shown in the grid.
    """

    def __init__(
        self,
        net: HFANet,
        layer: str = "foreground",
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None = None,
        haar_weight: float = HAAR_WEIGHT,
        haar_levels: int = HAAR_LEVELS,
        input_mode: str = "sidecar",
        degrade_seed: int = 0,
        copy_threshold: float = COPY_THRESHOLD,
        lpips: str = "auto",
        num_grid_images: int = 4,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        # Partial optimizer / scheduler objects stay out of the checkpoint (it must load weights-only).
        self.save_hyperparameters(ignore=["net", "optimizer", "lr_scheduler"], logger=False)
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.net = net
        self.ema = None
        if ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(ema_decay)).requires_grad_(False)
        self.layer = normalize_layer(layer)
        if normalize_layer(net.config.layer) != self.layer:
            raise ConfigError(f"HFAModule(layer={layer!r}) got a net configured for {net.config.layer!r}")
        if input_mode not in INPUT_MODES:
            raise ConfigError(f"input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
        if lpips not in ("off", "auto"):
            raise ConfigError(f"lpips must be auto|off, got {lpips!r}")
        self.val_metrics = torch.nn.ModuleDict(
            {f"{m}{r}": MeanMetric() for r in REGIONS[self.layer] for m in ("mad", "mse")}
        )
        if lpips != "off":
            for region in REGIONS[self.layer]:
                self.val_metrics[f"lpips{region}"] = MeanMetric()
        self._lpips: list = []  # built lazily; a list keeps it out of the state dict and checkpoints
        self._grid_rows: list[dict[str, torch.Tensor]] = []

    # -- inputs and forward ------------------------------------------------------------------------
    def fbdd_layer(self, batch: dict, stage: str) -> torch.Tensor:
        """The FBDD output for the batch: from its sidecar, or degraded ground truth."""
        name = f"fbdd_{self.layer}"
        if self.hparams.input_mode == "sidecar":
            if name not in batch:
                raise KeyError(
                    f"batch has no {name!r}: set data.sidecars to the folder written by "
                    "data/cache_fbdd_outputs.py, or use model.input_mode=degrade (development only)"
                )
            return batch[name]
        if stage == "train":  # fresh degradations every step, reproducible from the seed
            seed = stable_seed(self.hparams.degrade_seed, "train", self.global_step, *batch["key"])
        else:  # the same inputs at every validation
            seed = stable_seed(self.hparams.degrade_seed, stage, *batch["key"])
        gen = torch.Generator().manual_seed(seed)
        return degrade_like_fbdd(batch[self.layer], batch["alpha"], self.layer, gen)

    def forward(
        self,
        composite: torch.Tensor,
        alpha: torch.Tensor,
        fbdd_layer: torch.Tensor,
        net: HFANet | None = None,
    ) -> torch.Tensor:
        """Refined layer with the copy-through (not clamped, differentiable); ``net`` defaults to the trained one."""
        out = (net or self.net)(composite, alpha, fbdd_layer)
        return copy_through(out, composite, alpha, self.layer, self.hparams.copy_threshold)

    def losses(
        self, refined: torch.Tensor, gt: torch.Tensor, fbdd_layer: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{"loss", "mse"[, "haar"]}``: FAN MSE; BAN MSE + haar_weight * L_H(B, B_hat)."""
        mse = F.mse_loss(refined, gt)
        if self.layer == "foreground":
            return {"loss": mse, "mse": mse}
        haar = haar_highfreq_loss(refined, fbdd_layer, self.hparams.haar_levels)
        return {"loss": mse + self.hparams.haar_weight * haar, "mse": mse, "haar": haar}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        fbdd = self.fbdd_layer(batch, "train")
        refined = self(batch["composite"], batch["alpha"], fbdd)
        losses = self.losses(refined, batch[self.layer], fbdd)
        bs = fbdd.shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=bs)  # shown in the progress bar
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=bs)
        return losses["loss"]

    def inference_net(self) -> HFANet:
        """The net used for validation and export: the EMA weights when EMA is on."""
        return self.net if self.ema is None else self.ema.module

    def optimizer_step(self, *args, **kwargs) -> None:
        # EMA after each optimizer step, before the batch-end callbacks (ModelCheckpoint): a checkpoint
        # of step k holds the EMA of step k.
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    def configure_optimizers(self):
        if self.optimizer is None:
            raise ConfigError("HFAModule needs an optimizer (model.optimizer in the config)")
        opt = self.optimizer(params=self.net.parameters())
        if self.lr_scheduler is None:
            return opt
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer=opt), "interval": "step"},
        }

    # -- validation --------------------------------------------------------------------------------
    def lpips_metric(self):
        """LPIPS x1e2 (layeringdiff.metrics.lpips_metric), built on first use.

        The real AlexNet trunk when torchvision's file is present, else a random trunk, which
        LPIPSMetric announces with a warning in the log (then the numbers are not the metric).
        Built under a forked RNG so a random trunk does not shift the training randomness.
        """
        if not self._lpips:
            from layeringdiff.metrics.lpips_metric import LPIPSMetric

            with torch.random.fork_rng(devices=[]):
                self._lpips.append(LPIPSMetric(allow_random_backbone=True))
        return self._lpips[0].to(self.device)

    def on_validation_epoch_start(self) -> None:
        self._grid_rows = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        comp, alpha, gt = batch["composite"], batch["alpha"], batch[self.layer]
        fbdd = self.fbdd_layer(batch, "val")
        refined = self(comp, alpha, fbdd, self.inference_net())
        losses = self.losses(refined, gt, fbdd)
        bs = comp.shape[0]
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, batch_size=bs)
        out = refined.clamp(0, 1)
        self.update_error_metrics(out, gt, alpha)
        if "lpips" in self.val_metrics:
            self.update_lpips(out, gt, alpha)
        have = sum(r["alpha"].shape[0] for r in self._grid_rows)
        if have < self.hparams.num_grid_images:
            n = self.hparams.num_grid_images - have
            self._grid_rows.append(
                {
                    "composite": comp[:n],
                    "alpha": alpha[:n],
                    "fbdd": fbdd[:n],
                    "refined": out[:n],
                    "gt": gt[:n],
                }
            )

    def region_masks(self, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
        """The whole image and, for BAN, the visible (alpha == 0) and occluded background."""
        masks = {"": torch.ones_like(alpha, dtype=torch.bool)}
        if self.layer == "background":
            visible = alpha <= self.hparams.copy_threshold
            masks.update({"_visible": visible, "_occluded": ~visible})
        return masks

    def update_lpips(self, out: torch.Tensor, gt: torch.Tensor, alpha: torch.Tensor) -> None:
        """LPIPS x1e2 over the image and, for BAN, over each region (images where it is empty skipped)."""
        metric = self.lpips_metric()
        feats_out, feats_gt = metric.features(out), metric.features(gt)
        for region, mask in self.region_masks(alpha).items():
            values = metric.distance(feats_out, feats_gt, None if region == "" else mask)
            values = values[~values.isnan()]
            if values.numel():
                self.val_metrics[f"lpips{region}"].update(values.mean().to(out), values.numel())

    def update_error_metrics(self, out: torch.Tensor, gt: torch.Tensor, alpha: torch.Tensor) -> None:
        """MAD / MSE (values in [0, 1], all channels) over the image and, for BAN, per region."""
        diff = out - gt
        for region, mask in self.region_masks(alpha).items():
            count = mask.sum() * diff.shape[1]
            if count == 0:
                continue
            m = mask.to(diff.dtype)
            self.val_metrics[f"mad{region}"].update((diff.abs() * m).sum() / count, count)
            self.val_metrics[f"mse{region}"].update((diff.square() * m).sum() / count, count)

    def on_validation_epoch_end(self) -> None:
        for name, metric in self.val_metrics.items():
            if metric.update_count:
                self.log(f"val/{name}", metric.compute())
            metric.reset()
        if self._grid_rows and not self.trainer.sanity_checking:
            log_grid(self, hfa_grid(self._grid_rows), f"val/grid_{self.layer}")
        self._grid_rows = []

    # -- export ------------------------------------------------------------------------------------
    def export(self, path: str | os.PathLike) -> Path:
        """Write the network as a folder (config.json + safetensors) that ``HFANet.from_pretrained`` restores."""
        self.inference_net().save_pretrained(path)
        log.info("HFA %s network exported to %s", self.layer, path)
        return Path(path)


def hfa_grid(rows: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """A header row naming the columns, then one row per image: composite | alpha | FBDD layer |
    refined | ground truth, as (3, H', W')."""
    tiles = []
    for r in rows:
        for i in range(r["alpha"].shape[0]):
            tiles += [
                r["composite"][i],
                r["alpha"][i].expand(3, -1, -1),
                r["fbdd"][i],
                r["refined"][i],
                r["gt"][i],
            ]
    return labelled_grid(tiles, ["composite", "alpha", "FBDD", "refined", "gt"])
