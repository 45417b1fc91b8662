"""Tiny, untrained LayeringDiff layering exports: FBDD foreground/background and HFA FAN/BAN.

Built from the tiny SD2-inpainting repo (:mod:`layeringdiff.tiny.sd2`) through the same
``FBDD.from_sd2_inpainting`` + ``save_pretrained`` path as a real export, so
``LayeringDiffLayering.from_pretrained`` loads them with the real code; HFA networks are
small ``HFANet`` UNets saved with ``save_pretrained``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from layeringdiff.files import atomic_dir


def build(paths: Mapping[str, str | os.PathLike | None], seed: int = 0) -> dict[str, Path]:
    """Write the exports named in ``paths`` (keys ``fbdd_foreground``, ``fbdd_background``,
    ``fan``, ``ban``; ``None`` values are skipped); existing complete folders are kept.

    The tiny SD2 repo they start from goes into ``<parent of fbdd_foreground>/sd2_inpainting``.
    """
    from layeringdiff.networks.fbdd import CONFIG_NAME, FBDD
    from layeringdiff.tiny import sd2

    written: dict[str, Path] = {}
    fg_path = paths.get("fbdd_foreground")
    base = None
    for key, layer in (("fbdd_foreground", "foreground"), ("fbdd_background", "background")):
        if not paths.get(key):
            continue
        path = Path(paths[key])
        if not (path / CONFIG_NAME).is_file():
            base = base or sd2.build(Path(fg_path or path).parent / "sd2_inpainting", seed=seed)
            with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
                torch.manual_seed(seed)
                FBDD.from_sd2_inpainting(base, layer).save_pretrained(path)  # atomic itself
        written[key] = path
    for key, layer in (("fan", "foreground"), ("ban", "background")):
        if paths.get(key):
            written[key] = build_hfa(paths[key], layer, seed)
    return written


def build_hfa(path: str | os.PathLike, layer: str, seed: int = 0) -> Path:
    """A tiny untrained HFA network (FAN for ``"foreground"``, BAN for ``"background"``)."""
    from layeringdiff.networks.hfa import HFANet

    path = Path(path)
    if (path / "config.json").is_file():
        return path
    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
        torch.manual_seed(seed)
        net = HFANet(layer=layer, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8)
    return _publish(path, net.save_pretrained)


def _publish(path: Path, save) -> Path:
    """``save(folder)`` into a temporary sibling renamed to ``path``: an interrupted build leaves no
    folder that looks complete (a config.json without weights) to be loaded later."""
    with atomic_dir(path, replace=True) as tmp:  # a leftover without its config is replaced
        save(tmp)
    return path
