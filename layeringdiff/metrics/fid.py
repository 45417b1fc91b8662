"""FID and KID through clean-fid: pure functions of feature arrays, plus the Inception extractor.

Images go through clean-fid's ``clean`` pipeline: uint8 RGB -> PIL bicubic resize of each
channel in float to 299x299 (no re-quantisation) -> float 0..255 -> feature network. RGBA
foregrounds are first composited over a fixed matte colour (clean-fid itself would drop the
alpha channel silently). FID is clean-fid's ``frechet_distance``; KID is clean-fid's
``kernel_distance`` with a seeded random state (clean-fid leaves it unseeded), reported x1e3.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from layeringdiff.errors import MissingFileError
from layeringdiff.weights import resolve_file

KID_SCALE = 1e3
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_HINT = (
    f"put the clean-fid / StyleGAN2-ADA TorchScript Inception file {INCEPTION_FILE} there "
    "(or set the metric's inception_path); it is never downloaded"
)


def frechet_distance(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two feature sets (N, D) and (M, D): mean and covariance, then clean-fid's formula."""
    from cleanfid.fid import frechet_distance as _fd

    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if len(f1) < 2 or len(f2) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    return float(max(_fd(mu1, s1, mu2, s2), 0.0))


def kernel_inception_distance(
    feats1: np.ndarray, feats2: np.ndarray, seed: int = 0, num_subsets: int = 100, max_subset_size: int = 1000
) -> float:
    """KID x1e3: clean-fid's polynomial-kernel MMD over random subsets, with a seeded RNG.

    Args:
        feats1: generated-set features (N, D).
        feats2: reference-set features (M, D).
        seed: seeds the subset sampling, so the same inputs always give the same number.
        num_subsets: number of random subsets averaged.
        max_subset_size: subset size cap (clean-fid's default 1000).
    """
    from cleanfid.fid import kernel_distance

    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if min(len(f1), len(f2)) < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        kid = kernel_distance(f1, f2, num_subsets=num_subsets, max_subset_size=max_subset_size)
    finally:
        np.random.set_state(state)
    return float(kid) * KID_SCALE


def over_matte(img: Image.Image, matte: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """uint8 (H, W, 3) of an image; RGBA / LA / P-with-transparency is composited over ``matte``."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), np.float32)
        a = rgba[..., 3:] / 255.0
        rgb = rgba[..., :3] * a + np.asarray(matte, np.float32)[None, None] * (1 - a)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.asarray(img.convert("RGB"))


def clean_resize(rgb: np.ndarray, size: int = 299) -> torch.Tensor:
    """clean-fid's ``clean`` resize of a uint8 (H, W, 3) array -> float tensor (3, size, size) in 0..255."""
    from cleanfid.resize import make_resizer

    resized = make_resizer("PIL", False, "bicubic", (size, size))(rgb)
    return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))


class InceptionFeatures(torch.nn.Module):
    """The TorchScript Inception-v3 that clean-fid uses (pool3, 2048-d), from a local file.

    Args:
        path: the ``inception-2015-12-05.pt`` file (or a tiny stand-in with the same interface,
            see :mod:`layeringdiff.tiny.metrics`).
        device: where the network runs (``cpu``, ``cuda``, ...); inputs are moved there.
    """

    input_size = 299

    def __init__(self, path: str | Path, device: str | torch.device = "cpu") -> None:
        super().__init__()
        path = resolve_file(path, "Inception (FID/KID)", INCEPTION_HINT)
        self.device = torch.device(device)
        self.base = torch.jit.load(str(path), map_location=self.device).eval()
        self.name = f"{Path(path).name}:{Path(path).stat().st_size}"

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, D) of float images (B, 3, 299, 299) in 0..255 (clean-fid's contract)."""
        x = x.to(self.device, torch.float32)
        return self.base.layers.forward((x - 128) / 128).reshape(x.shape[0], -1)


def image_features(
    images: Sequence[Image.Image | str | Path],
    extractor: torch.nn.Module,
    matte: Sequence[int] = (255, 255, 255),
    batch_size: int = 32,
    skipped: list | None = None,
) -> np.ndarray:
    """Features (N, D) of images (PIL or paths) through matte compositing, clean resize and ``extractor``.

    Args:
        images: PIL images or image files.
        extractor: module mapping float (B, 3, 299, 299) in 0..255 to (B, D).
        matte: RGB colour that transparent pixels are composited over.
        batch_size: images per forward.
        skipped: when given, unreadable files are appended here and left out instead of raising.
    """
    from layeringdiff.images import ImageReadError, open_image

    size = getattr(extractor, "input_size", 299)
    feats = []
    for i in range(0, len(images), batch_size):
        batch = []
        for item in images[i : i + batch_size]:
            try:
                img = item if isinstance(item, Image.Image) else open_image(item)
            except (ImageReadError, OSError):
                if skipped is None:
                    raise
                skipped.append(item)
                continue
            batch.append(clean_resize(over_matte(img, matte), size))
        if not batch:
            continue
        with torch.inference_mode():
            feats.append(extractor(torch.stack(batch)).double().cpu().numpy())
    if not feats:
        raise ValueError("no images to compute features of")
    return np.concatenate(feats)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def reference_features(
    folder: str | Path,
    extractor: torch.nn.Module,
    cache_dir: str | Path,
    matte: Sequence[int] = (255, 255, 255),
    num: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Features of a reference image folder (e.g. MAGICK or COCO val), computed once and cached.

    The cache file in ``cache_dir`` is keyed by the extractor, the matte colour, the subset and
    the folder's file list (relative names and sizes), so a changed folder is recomputed.

    Args:
        folder: images, searched recursively.
        extractor: the feature network (its ``name`` attribute enters the cache key).
        cache_dir: where ``<folder name>-<hash>.npy`` files are kept (never inside site-packages).
        matte: matte colour for RGBA references (MAGICK foregrounds).
        num: use a fixed random subset of this many files (seeded), ``None`` for all.
        seed: seed of that subset.
    """
    import hashlib
    import io
    import logging
    import random

    from layeringdiff.files import atomic_write_bytes

    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"reference set: no folder at {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if num is not None and num < len(files):
        files = sorted(random.Random(seed).sample(files, num))
    if len(files) < 2:
        raise MissingFileError(f"reference set {folder}: needs at least 2 images, found {len(files)}")
    h = hashlib.sha1(f"{getattr(extractor, 'name', type(extractor).__name__)}|{tuple(matte)}".encode())
    for p in files:
        h.update(f"{p.relative_to(folder)}|{p.stat().st_size}\n".encode())
    cache = Path(cache_dir) / f"{folder.name}-{h.hexdigest()[:16]}.npy"
    if cache.is_file():
        return np.load(cache)
    skipped: list = []
    feats = image_features(files, extractor, matte, skipped=skipped)
    if skipped:
        logging.getLogger(__name__).warning(
            "reference set %s: %d unreadable image(s) skipped", folder, len(skipped)
        )
    buf = io.BytesIO()
    np.save(buf, feats)
    atomic_write_bytes(cache, buf.getvalue())
    return feats
