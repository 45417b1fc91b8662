"""Read method outputs laid out as in docs/architecture.md (output folder): one folder per sample with ``composite.png``,
``foreground.png`` (RGBA) or ``foreground_1.png``, ``background.png``, ``alpha.png``, ``meta.json``.

Any method (ours, LayerDiffuse run elsewhere, baselines) written in this layout is scored the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from layeringdiff.errors import ConfigError, MissingFileError
from layeringdiff.images import open_image


@dataclass
class SampleFolder:
    """One decomposition output folder."""

    key: str
    path: Path

    @property
    def foreground_path(self) -> Path:
        single = self.path / "foreground.png"
        return single if single.is_file() else self.path / "foreground_1.png"

    def meta(self) -> dict:
        p = self.path / "meta.json"
        if not p.is_file():
            return {}
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}: unreadable meta.json ({e})") from None

    def image(self, name: str) -> Image.Image:
        path = self.foreground_path if name == "foreground" else self.path / f"{name}.png"
        return open_image(path)

    def alpha(self) -> np.ndarray:
        """Foreground alpha (H, W) in [0, 1]: ``alpha.png``, else the foreground's alpha channel."""
        p = self.path / "alpha.png"
        img = open_image(p).convert("L") if p.is_file() else open_image(self.foreground_path).getchannel("A")
        return np.asarray(img, np.float32) / 255.0


def list_samples(root: str | Path) -> list[SampleFolder]:
    """Sample folders under ``root`` (direct subfolders holding a foreground), sorted by name.

    Raises:
        FileNotFoundError: ``root`` is not a folder or holds no sample folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"{root}: output folder does not exist")
    found = [
        SampleFolder(p.name, p)
        for p in sorted(root.iterdir())
        if p.is_dir()
        and not p.name.startswith(".")
        and ((p / "foreground.png").is_file() or (p / "foreground_1.png").is_file())
    ]
    if not found:
        raise MissingFileError(f"{root}: no sample folders (subfolders with foreground.png) found")
    return found
