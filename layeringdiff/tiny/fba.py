"""A tiny, untrained FBA Matting folder for smoke runs (``pipeline=tiny layering=fba``) and tests.

Same format as a converted checkpoint (``config.json`` + ``model.safetensors``, written by
:func:`layeringdiff.networks.fba_matting.save_pretrained`), so the real loading code reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

TINY_CONFIG = {"base_width": 8, "blocks": [1, 1, 1, 1], "decoder_width": 16, "norm_groups": 4}


def build(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny network to ``path`` unless a complete folder is already there."""
    from layeringdiff.networks.fba import FBANet
    from layeringdiff.networks.fba_matting import CONFIG_NAME, WEIGHTS_NAME, save_pretrained

    path = Path(path)
    if (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file():
        return path
    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
        torch.manual_seed(seed)
        net = FBANet(**TINY_CONFIG)
        with torch.no_grad():
            net.decoder.conv_up4[4].bias[0] += 0.5  # alpha mid-range, not all clipped to 0
    try:
        return save_pretrained(net, path)
    except OSError:  # another process published the same folder first
        if (path / CONFIG_NAME).is_file():
            return path
        raise
