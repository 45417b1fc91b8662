"""Write procedural layers as MAGICK / BG-20k style folders, to exercise the real readers.

Foregrounds: ``{root}/images/{id[:2]}/{id}.png`` (RGBA, ``size`` x ``size``, 1024 like MAGICK) and
``{root}/magick_index.tsv`` (``page_id``, ``subject``). Backgrounds: ``{root}/train/*.jpg`` and
``{root}/testval/*.jpg``, 1-2 megapixels with assorted aspect ratios, like BG-20k photos. Every
file is written atomically and existing files are kept, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from layeringdiff.data.splits import stable_seed, stable_unit
from layeringdiff.data.synthetic import synth_background, synth_foreground
from layeringdiff.files import atomic_write_bytes

ASPECTS = (1.0, 4 / 3, 3 / 2, 16 / 9)


def synthetic_page_id(seed: int, index: int) -> str:
    """MAGICK-like hexadecimal page id (stable)."""
    return hashlib.sha1(f"synthetic-magick/{seed}/{index}".encode()).hexdigest()[:20]


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def write_magick_folder(root: str | os.PathLike, num: int, size: int = 1024, seed: int = 0) -> Path:
    """Write ``num`` RGBA foregrounds in the MAGICK layout; returns ``root``.

    Args:
        root: output folder.
        num: number of foregrounds.
        size: side of each square PNG.
        seed: generator seed (ids and content).
    """
    root = Path(root)
    index = root / "magick_index.tsv"
    known = (
        dict(line.split("\t", 1) for line in index.read_text("utf-8").splitlines()[1:])
        if index.is_file()
        else {}
    )
    rows = ["page_id\tsubject"]
    for i in range(num):
        pid = synthetic_page_id(seed, i)
        path = root / "images" / pid[:2] / f"{pid}.png"
        if path.is_file() and pid in known:  # resume: keep what an earlier run wrote
            caption = known[pid]
        else:
            rng = np.random.default_rng(stable_seed("magick-fg", seed, i))
            rgb, alpha, caption = synth_foreground(rng, size)
            rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
            atomic_write_bytes(path, _encode(rgba, "PNG", compress_level=4))
        rows.append(f"{pid}\t{caption}")
    atomic_write_bytes(index, ("\n".join(rows) + "\n").encode("utf-8"))
    return root


def background_shape(
    rng: np.random.Generator, megapixels: tuple[float, float] = (1.0, 2.0)
) -> tuple[int, int]:
    """(height, width) of a random photo of 1-2 megapixels in landscape or portrait."""
    mp = rng.uniform(*megapixels) * 1e6
    aspect = float(rng.choice(ASPECTS))
    long_side, short_side = int(round((mp * aspect) ** 0.5)), int(round((mp / aspect) ** 0.5))
    return (short_side, long_side) if rng.random() < 0.75 else (long_side, short_side)


def write_bg20k_folder(
    root: str | os.PathLike,
    num: int,
    seed: int = 0,
    testval_fraction: float = 0.25,
    megapixels: tuple[float, float] = (1.0, 2.0),
    quality: int = 90,
) -> Path:
    """Write ``num`` JPEG backgrounds in the BG-20k layout (``train/``, ``testval/``); returns ``root``."""
    root = Path(root)
    for i in range(num):
        name = f"synthetic_{seed}_{i:06d}.jpg"
        sub = "testval" if stable_unit("bg20k-split", seed, i) < testval_fraction else "train"
        path = root / sub / name
        if path.is_file():
            continue
        rng = np.random.default_rng(stable_seed("bg20k", seed, i))
        img = Image.fromarray(synth_background(rng, background_shape(rng, megapixels)), "RGB")
        atomic_write_bytes(path, _encode(img, "JPEG", quality=quality))
    for sub in ("train", "testval"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root
