"""Validation image grids: one row per sample, a header row naming the columns, logged as PNG,
TensorBoard image and W&B image."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

HEADER_HEIGHT = 14  # pixels of the label row above the first tile row
PADDING = 2


def label_strip(labels: list[str], tile_width: int, padding: int = PADDING) -> torch.Tensor:
    """A white (3, HEADER_HEIGHT, W) strip with each label centred over its column, in black.

    Labels wider than a tile are cut at the right (tiles at training size are 64 px and up).
    """
    from PIL import Image, ImageDraw, ImageFont

    width = len(labels) * (tile_width + padding) + padding
    strip = Image.new("RGB", (width, HEADER_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    for i, label in enumerate(labels):
        while label and draw.textlength(label, font=font) > tile_width:
            label = label[:-1]
        x0 = padding + i * (tile_width + padding)
        x = x0 + (tile_width - draw.textlength(label, font=font)) / 2
        draw.text((x, 1), label, fill=(0, 0, 0), font=font)
    return torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1).float() / 255.0


def labelled_grid(tiles: list[torch.Tensor], labels: list[str]) -> torch.Tensor:
    """Tiles (3, h, w) in row-major order, ``len(labels)`` per row, under a header row of labels.

    Returns:
        (3, HEADER_HEIGHT + rows * (h + PADDING) + PADDING, W) float image in [0, 1].
    """
    from torchvision.utils import make_grid

    if not tiles or len(tiles) % len(labels):
        raise ValueError(f"labelled_grid: {len(tiles)} tiles do not fill rows of {len(labels)} columns")
    stack = torch.stack([t.detach().float().cpu() for t in tiles])
    grid = make_grid(stack, nrow=len(labels), padding=PADDING, pad_value=1.0)
    header = label_strip(labels, stack.shape[-1])
    return torch.cat([header, grid], dim=1)


def log_grid(module: pl.LightningModule, grid: torch.Tensor, name: str) -> Path | None:
    """Save the grid as a PNG in the run folder and hand it to every image-capable logger
    (rank zero only: under DDP every rank validates, one writes; None on the others)."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    from layeringdiff.images import save_png

    if not module.trainer.is_global_zero:
        return None
    step = module.global_step
    path = (
        Path(module.trainer.default_root_dir) / "val_images" / f"{name.replace('/', '_')}_step{step:07d}.png"
    )
    save_png(grid, path)
    for logger in module.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=name, images=[str(path)], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(name, grid, step)
    return path
