"""Per-sample side files: extra tensors stored beside a dataset, keyed by the sample ``key``.

The FBDD latent cache (composite / F / B latents) and the HFA input cache (FBDD outputs F_hat,
B_hat) are both sidecar folders: ``{root}/{key}.safetensors``. Loading merges their tensors
into the sample dict. uint8 tensors are images and come back as float in [0, 1]; float tensors
come back as float32.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from layeringdiff.errors import MissingFileError
from layeringdiff.files import atomic_write_bytes


def sidecar_path(root: str | os.PathLike, key: str) -> Path:
    if "/" in key or key in ("", ".", ".."):
        raise ValueError(f"sample key {key!r} is not a valid file name")
    return Path(root) / f"{key}.safetensors"


def has_sidecar(root: str | os.PathLike, key: str) -> bool:
    return sidecar_path(root, key).is_file()


def save_sidecar(root: str | os.PathLike, key: str, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``tensors`` for sample ``key`` atomically (temp file, then rename)."""
    path = sidecar_path(root, key)
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    atomic_write_bytes(path, data)
    return path


def load_sidecar(root: str | os.PathLike, key: str) -> dict[str, torch.Tensor]:
    """Read the sidecar of sample ``key``; uint8 -> float [0, 1], floats -> float32."""
    path = sidecar_path(root, key)
    if not path.is_file():
        raise MissingFileError(f"{path}: no sidecar for sample {key!r}")
    out = {}
    for k, v in load_file(str(path)).items():
        out[k] = v.float().div_(255.0) if v.dtype == torch.uint8 else v.float()
    return out


def image_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] -> uint8 tensor, the compact way to store image sidecars."""
    return x.detach().clamp(0, 1).mul(255.0).round().to(torch.uint8)
