"""Foreground and background sources on disk: MAGICK / BG-20k layouts or any image folder.

Listing is cheap (names only); decoding happens per sample. Bad input is handled as follows:

- missing or empty folder, MAGICK index without ``page_id`` / ``subject``: refused up front with a
  one-line :class:`DataSourceError` naming the folder or file;
- MAGICK index rows whose PNG is missing: skipped at listing time and counted (``skipped``);
- truncated / corrupt files, non-images, decompression bombs, foregrounds without alpha or with
  an empty alpha, images whose shorter side is below ``min_side``: :class:`BadSampleError` (one
  line naming the file), which data sets skip and count;
- grayscale, palette, CMYK and 16-bit images: converted to 8-bit RGB(A); EXIF-rotated photos:
  turned upright; images smaller than the crop: upscaled by the recipe's bicubic resize.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layeringdiff.data.splits import DEFAULT_FRACTIONS, split_of, stable_unit
from layeringdiff.errors import UserError
from layeringdiff.images import ImageReadError, has_alpha, open_image, to_rgb, to_rgba

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MAGICK_INDEX = "magick_index.tsv"
# Images whose shorter side is below this are refused: upscaling them to 512 only makes blur.
DEFAULT_MIN_SIDE = 32


class DataSourceError(UserError, ValueError):
    """A data source cannot be used at all (missing / empty folder, malformed index)."""


class BadSampleError(UserError, ValueError):
    """One file cannot become a sample; the message is one line naming the file and the reason."""

    def __init__(self, message: str, path: str | os.PathLike = "") -> None:
        super().__init__(message)
        self.path = str(path)


@dataclass(frozen=True)
class ImageEntry:
    """One image of a source: stable id, file, caption ("" when the source has none)."""

    id: str
    path: Path
    caption: str = ""


@dataclass
class Listing:
    """The entries of a source plus what was skipped while listing (id -> reason)."""

    entries: list[ImageEntry]
    skipped: dict[str, str] = field(default_factory=dict)
    layout: str = "folder"


def safe_id(text: str) -> str:
    """File-name-safe version of an id (keys become sidecar file names)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def _check_folder(root: Path) -> None:
    if not root.exists():
        raise DataSourceError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataSourceError(f"{root}: not a folder")


def _image_files(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(f for f in files if not f.name.startswith("."))


def list_magick(root: str | os.PathLike) -> Listing:
    """MAGICK layout: ``magick_index.tsv`` (tab-separated, header with ``page_id`` and ``subject``)
    and ``images/{page_id[:2]}/{page_id}.png``."""
    root = Path(root)
    index = root / MAGICK_INDEX
    with open(index, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"page_id", "subject"} - set(reader.fieldnames or [])
        if missing:
            raise DataSourceError(
                f"{index}: header lacks column(s) {sorted(missing)} (has {reader.fieldnames})"
            )
        rows = list(reader)
    entries, skipped = [], {}
    for row in rows:
        pid = (row["page_id"] or "").strip()
        if not pid:
            continue
        path = root / "images" / pid[:2] / f"{pid}.png"
        if path.is_file():
            entries.append(ImageEntry(safe_id(pid), path, (row["subject"] or "").strip()))
        else:
            skipped[pid] = f"{path}: listed in {MAGICK_INDEX} but missing"
    if not entries:
        raise DataSourceError(f"{index}: none of the {len(rows)} listed images exist under {root / 'images'}")
    return Listing(entries, skipped, "magick")


def list_image_folder(root: str | os.PathLike, id_root: str | os.PathLike | None = None) -> Listing:
    """Any folder of images (recursive). Ids are paths relative to ``id_root`` (default ``root``)
    without suffix, made file-name safe; a ``{stem}.txt`` beside an image is its caption."""
    root = Path(root)
    id_root = root if id_root is None else Path(id_root)
    _check_folder(root)
    files = _image_files(root)
    if not files:
        raise DataSourceError(f"{root}: no image files found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    entries = []
    for p in files:
        txt = p.with_suffix(".txt")
        caption = (
            txt.read_text(encoding="utf-8", errors="replace").strip().splitlines()[0] if txt.is_file() else ""
        )
        entries.append(ImageEntry(safe_id(str(p.relative_to(id_root).with_suffix(""))), p, caption))
    return Listing(entries)


def list_foregrounds(root: str | os.PathLike) -> Listing:
    """MAGICK layout when ``magick_index.tsv`` exists, else any folder of RGBA images."""
    root = Path(root)
    _check_folder(root)
    return list_magick(root) if (root / MAGICK_INDEX).is_file() else list_image_folder(root)


def foreground_split(
    listing: Listing, split: str, fractions: dict[str, float] | None = None
) -> list[ImageEntry]:
    """Foregrounds of one split by a stable hash of the id (MAGICK has no official split)."""
    return [e for e in listing.entries if split_of(e.id, fractions) == split]


def background_split(
    root: str | os.PathLike, split: str, fractions: dict[str, float] | None = None
) -> Listing:
    """Backgrounds of one split.

    BG-20k layout (``train/`` and ``testval/`` folders): train -> ``train/``; val and test share
    ``testval/``, split by a stable hash in the ratio ``fractions["val"] : fractions["test"]``
    (default 1 : 1). Any other folder: a hash split over all images by ``fractions`` (default
    98/1/1). Ids are relative to ``root``, as in ``list_image_folder(root)`` (pair lists).
    """
    root = Path(root)
    _check_folder(root)
    if (root / "train").is_dir() and (root / "testval").is_dir():
        if split == "train":
            listing = list_image_folder(root / "train", id_root=root)
        else:
            listing = list_image_folder(root / "testval", id_root=root)
            f = DEFAULT_FRACTIONS if fractions is None else fractions
            val_share = f["val"] / (f["val"] + f["test"])
            want_val = split == "val"
            listing.entries = [
                e for e in listing.entries if (stable_unit("bg-val", e.id) < val_share) == want_val
            ]
        listing.layout = "bg20k"
    else:
        listing = list_image_folder(root)
        listing.entries = [e for e in listing.entries if split_of(e.id, fractions) == split]
    if not listing.entries:
        raise DataSourceError(f"{root}: no background images for split {split!r}")
    return listing


def load_foreground(
    path: str | os.PathLike, min_side: int = DEFAULT_MIN_SIDE
) -> tuple[np.ndarray, np.ndarray]:
    """Decode an RGBA foreground as uint8 RGB (H, W, 3) and alpha (H, W) (views of one RGBA array).

    Raises:
        BadSampleError: unreadable, no alpha channel, fully transparent, or smaller than
            ``min_side``.
    """
    rgba = load_foreground_rgba(path, min_side)
    return rgba[:, :, :3], rgba[:, :, 3]


def load_foreground_rgba(path: str | os.PathLike, min_side: int = DEFAULT_MIN_SIDE) -> np.ndarray:
    """Decode an RGBA foreground as one uint8 (H, W, 4) array (the recipe resizes all four at once).

    Raises:
        BadSampleError: as :func:`load_foreground`.
    """
    img = _open(path, min_side)
    if not has_alpha(img):
        raise BadSampleError(f"{path}: foreground has no alpha channel (mode {img.mode})", path)
    rgba = np.asarray(to_rgba(img))
    if not rgba[:, :, 3].any():
        raise BadSampleError(f"{path}: foreground alpha is empty (fully transparent)", path)
    return rgba


def load_background(
    path: str | os.PathLike, min_side: int = DEFAULT_MIN_SIDE, draft_to: int | None = None
) -> np.ndarray:
    """Decode any image as uint8 RGB (H, W, 3); transparency, if any, is dropped.

    ``draft_to``: a JPEG at least twice this on its shorter side is decoded at 1/2, 1/4 or 1/8 scale
    in the DCT domain (never below ``draft_to``); the recipe's resize finishes the job.
    """
    return np.asarray(to_rgb(_open(path, min_side, draft_to)))


def _open(path: str | os.PathLike, min_side: int, draft_to: int | None = None):
    try:  # the minimum side is checked on the header, before decoding
        return open_image(path, min_side=min_side, draft_to=draft_to)
    except ImageReadError as e:
        raise BadSampleError(str(e), path) from None
