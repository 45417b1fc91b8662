"""Image reading and conversion at the edges of the system (PIL / files <-> tensors).

Every reader failure is an :class:`ImageReadError` whose message is one line naming the file,
so long jobs can skip and count bad files and command-line tools can print it and exit.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from layeringdiff.errors import UserError
from layeringdiff.files import atomic_write_bytes

# Refuse images above this many pixels (decompression bombs). PIL's own limit
# (Image.MAX_IMAGE_PIXELS, about 89 MP, e.g. 9459x9459) applies as well: open_image treats its
# warning as an error, so the smaller of the two is the effective limit.
MAX_PIXELS = 16384 * 16384


class ImageReadError(UserError, ValueError):
    """A file could not be read as an image; the message names the file and the reason."""


def _check_header_size(
    path: Path, w: int, h: int, max_pixels: int, min_side: int | None, max_side: int | None
) -> None:
    """Refuse from the header's size alone: nothing has been decoded yet."""
    if w * h > max_pixels:
        raise ImageReadError(f"{path}: {w}x{h} exceeds the {max_pixels}-pixel limit (decompression bomb?)")
    if max_side is not None and max(w, h) > max_side:
        raise ImageReadError(f"{path}: {w}x{h} is larger than {max_side} pixels per side (resize it first)")
    if min_side is not None and min(w, h) < min_side:
        raise ImageReadError(f"{path}: {w}x{h} is smaller than the {min_side}-pixel minimum side")


def open_image(
    path: str | os.PathLike,
    max_pixels: int = MAX_PIXELS,
    *,
    min_side: int | None = None,
    max_side: int | None = None,
    draft_to: int | None = None,
) -> Image.Image:
    """Open, fully decode and EXIF-orient an image, refusing bombs and non-images.

    The size limits are checked on the header (``Image.open`` reads only that) before a single
    pixel is decoded: a 100 KB PNG of 9000x9000 pixels costs no 1.6 GB when it is refused.

    Args:
        path: image file.
        max_pixels: largest accepted width * height (PIL's own limit applies too).
        min_side, max_side: optional bounds on each side (as stored, before EXIF rotation).
        draft_to: for a JPEG at least twice this on its shorter side, let the decoder scale it
            by 1/2, 1/4 or 1/8 in the DCT domain (Pillow's draft mode: less to decode and to
            resize) as far as the shorter side stays >= ``draft_to``; other images: no effect.

    Returns:
        The decoded PIL image in its original mode (orientation applied).

    Raises:
        ImageReadError: missing, unreadable, truncated, not an image, or too large or small.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # lazy: the header only
                _check_header_size(path, *img.size, max_pixels, min_side, max_side)
                if draft_to and img.format == "JPEG" and 2 * draft_to <= min(img.size):
                    scale = draft_to / min(img.size)
                    img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # no copy of an upright image
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(f"{path}: refused as a decompression bomb ({e})") from None
    except Exception as e:  # PIL raises many types for corrupt data
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{path}: not a readable image ({reason})") from None
    if img.width < 1 or img.height < 1:
        raise ImageReadError(f"{path}: empty image")
    return img


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding it (EXIF rotation not applied).

    Raises:
        ImageReadError: missing or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.size
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: refused as a decompression bomb ({e})") from None
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageReadError(f"{path}: not a readable image ({reason})") from None


def _to_8bit(img: Image.Image) -> Image.Image:
    """Bring 16-bit / 32-bit / float single-channel images into 8-bit range."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), "L")
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode (L, P, CMYK, 16-bit, RGBA...) -> RGB. Transparency is dropped."""
    img = _to_8bit(img)
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def to_rgba(img: Image.Image) -> Image.Image:
    """Any mode -> RGBA, keeping real transparency (palette transparency included)."""
    img = _to_8bit(img)
    if img.mode == "RGBA":
        return img
    if img.mode == "LA":
        return img.convert("RGBA")
    if img.mode == "P":
        return img.convert("RGBA")
    return img.convert("RGBA")


def has_alpha(img: Image.Image) -> bool:
    """True when the image carries a transparency channel or palette transparency."""
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit PIL image -> float tensor (C, H, W) in [0, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float tensor (C, H, W) in [0, 1] -> uint8 array (H, W, C), rounded to nearest."""
    if x.ndim != 3:
        raise ValueError(f"expected (C, H, W), got {tuple(x.shape)}")
    return x.detach().float().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """Float tensor (1|3|4, H, W) in [0, 1] -> PIL image (L, RGB or RGBA)."""
    arr = tensor_to_uint8(x)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode)


def load_rgb(path: str | os.PathLike, max_side: int | None = None) -> torch.Tensor:
    """Read any image file as an RGB float tensor (3, H, W); ``max_side`` is checked on the header."""
    return pil_to_tensor(to_rgb(open_image(path, max_side=max_side)))


def load_mask(path: str | os.PathLike, max_side: int | None = None) -> torch.Tensor:
    """Read a grayscale mask / alpha / trimap file as (1, H, W) in [0, 1].

    An RGBA file contributes its alpha channel; any other mode is converted to luminance.
    ``max_side`` is checked on the header, before decoding.
    """
    img = open_image(path, max_side=max_side)
    if has_alpha(img):
        return pil_to_tensor(to_rgba(img).getchannel("A"))
    return pil_to_tensor(_to_8bit(img).convert("L"))


def save_png(img: Image.Image | torch.Tensor, path: str | os.PathLike) -> None:
    """Save a PIL image or a (C, H, W) [0, 1] tensor as PNG, atomically."""
    import io

    if isinstance(img, torch.Tensor):
        img = tensor_to_pil(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
