"""Tiny random-init stand-ins for the metric networks (Inception for FID/KID, CLIP, LPIPS trunk).

They are saved in the same on-disk form as the real ones and load through the same code:
a TorchScript file with a ``layers`` submodule (clean-fid's Inception interface), an open_clip
``local-dir`` folder (``open_clip_config.json`` + ``open_clip_model.safetensors``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from layeringdiff.files import atomic_file


class _TinyInceptionLayers(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 7, stride=4, padding=3)
        self.conv2 = torch.nn.Conv2d(16, dim, 3, stride=4, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        return torch.relu(self.conv2(x)).mean((2, 3))


class _TinyInception(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = _TinyInceptionLayers(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - 128) / 128)


def build_inception(path: str | Path, seed: int = 0, dim: int = 32) -> Path:
    """Write a tiny TorchScript feature network with clean-fid's Inception interface to ``path`` (a file)."""
    path = Path(path)
    if path.is_file():
        return path
    torch.manual_seed(seed)
    traced = torch.jit.trace(_TinyInception(dim).eval(), torch.rand(1, 3, 299, 299) * 255)
    with atomic_file(path) as tmp:
        torch.jit.save(traced, str(tmp))
    return path


TINY_CLIP_CFG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def build_clip(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny random open_clip model as a ``local-dir`` folder (config + safetensors)."""
    import open_clip
    from safetensors.torch import save_file

    path = Path(path)
    if (path / "open_clip_config.json").is_file() and (path / "open_clip_model.safetensors").is_file():
        return path
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CFG)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "open_clip_model.safetensors"))
    config = {"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": {}}
    (path / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    return path


def build(path: str | Path, seed: int = 0) -> Path:
    """Build every tiny metric network under ``path``: ``inception.pt`` and ``clip/``."""
    path = Path(path)
    build_inception(path / "inception.pt", seed)
    build_clip(path / "clip", seed)
    return path
