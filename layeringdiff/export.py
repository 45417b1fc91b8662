"""Layered files artists open: the PNG set, Photoshop PSD and OpenRaster (.ora).

A decomposition is a background (3, H, W) and foregrounds (3, H, W) with alphas (1, H, W),
foregrounds ordered top-most first (docs/architecture.md). :func:`save_decomposition` writes the whole
output folder into a temporary sibling and renames it into place when complete, so a folder
that exists is always complete.
"""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from layeringdiff.errors import OutputExistsError, OutputPermissionError
from layeringdiff.files import atomic_dir, atomic_write_bytes, temp_sibling
from layeringdiff.images import tensor_to_pil
from layeringdiff.preview import preview_image

ORA_MIMETYPE = b"image/openraster"
THUMBNAIL_SIZE = 256
PREVIEW_NAME = "preview.png"  # composite | foregrounds over a checkerboard | alphas | background


def layer_names(num_foregrounds: int) -> list[str]:
    """Names of the layers top-most first: "Foreground 1".."Foreground N", then "Background"."""
    return [f"Foreground {i + 1}" for i in range(num_foregrounds)] + ["Background"]


def foreground_rgba(foreground: torch.Tensor, alpha: torch.Tensor) -> Image.Image:
    """(3, H, W) colour and (1, H, W) alpha -> RGBA PIL image (straight, not premultiplied, alpha)."""
    return tensor_to_pil(torch.cat([foreground, alpha], dim=0))


def _layer_images(
    background: torch.Tensor, foregrounds: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor]
):
    if len(foregrounds) != len(alphas) or not foregrounds:
        raise ValueError(
            f"need one alpha per foreground and at least one: {len(foregrounds)} vs {len(alphas)}"
        )
    fg = [foreground_rgba(f, a) for f, a in zip(foregrounds, alphas)]
    return fg, tensor_to_pil(background).convert("RGB")


def flatten(layers_top_first: Sequence[Image.Image]) -> Image.Image:
    """Composite 8-bit layers (top-most first, last one opaque) with straight-alpha "over", in float."""
    out = np.asarray(layers_top_first[-1].convert("RGB"), dtype=np.float64) / 255.0
    for layer in reversed(layers_top_first[:-1]):
        rgba = np.asarray(layer.convert("RGBA"), dtype=np.float64) / 255.0
        a = rgba[..., 3:]
        out = a * rgba[..., :3] + (1.0 - a) * out
    return Image.fromarray(np.round(out * 255.0).astype(np.uint8), "RGB")


def psd_bytes(
    background: torch.Tensor, foregrounds: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor]
) -> bytes:
    """A layered PSD: an opaque "Background" and RGBA "Foreground N".."Foreground 1" above it."""
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer

    fg_images, bg_image = _layer_images(background, foregrounds, alphas)
    psd = PSDImage.new("RGBA", bg_image.size)  # RGBA: layer alpha is real transparency, not a mask
    psd.append(PixelLayer.frompil(bg_image, psd, "Background"))
    for i in reversed(range(len(fg_images))):  # PSD layer order is bottom to top
        psd.append(PixelLayer.frompil(fg_images[i], psd, f"Foreground {i + 1}"))
    buf = io.BytesIO()
    psd.save(buf)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def ora_bytes(
    background: torch.Tensor, foregrounds: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor]
) -> bytes:
    """An OpenRaster file: ``mimetype`` (first, stored), ``stack.xml``, ``data/*.png``,
    ``mergedimage.png`` and ``Thumbnails/thumbnail.png``; layers listed top-most first."""
    fg_images, bg_image = _layer_images(background, foregrounds, alphas)
    names = layer_names(len(fg_images))
    images = [*fg_images, bg_image]
    files = [f"data/foreground_{i + 1}.png" for i in range(len(fg_images))] + ["data/background.png"]
    w, h = bg_image.size
    root = ET.Element("image", w=str(w), h=str(h), version="0.0.3")
    stack = ET.SubElement(root, "stack")
    for name, src in zip(names, files):
        ET.SubElement(
            stack, "layer", name=name, src=src, x="0", y="0", opacity="1.000",
            visibility="visible", **{"composite-op": "svg:src-over"},
        )  # fmt: skip
    merged = flatten(images)
    thumb = merged.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        # ZipInfo(name) carries a fixed date; a plain name would stamp the current time, and the
        # same layers would give different bytes a second later.
        def put(name: str, data: bytes, compress: int = zipfile.ZIP_STORED) -> None:
            z.writestr(zipfile.ZipInfo(name), data, compress_type=compress)

        put("mimetype", ORA_MIMETYPE)
        put("stack.xml", ET.tostring(root, encoding="utf-8", xml_declaration=True), zipfile.ZIP_DEFLATED)
        for src, img in zip(files, images):
            put(src, _png(img))  # PNG is already compressed
        put("mergedimage.png", _png(merged))
        put("Thumbnails/thumbnail.png", _png(thumb))
    return buf.getvalue()


def read_ora(path: str | os.PathLike) -> dict:
    """Read an OpenRaster file back: ``{"size": (w, h), "layers": [(name, PIL image), ...]
    top-most first, "merged": PIL image, "thumbnail": PIL image}``.

    Raises:
        ValueError: the file is not an OpenRaster archive (wrong or misplaced mimetype).
    """
    with zipfile.ZipFile(path) as z:
        first = z.infolist()[0]
        if first.filename != "mimetype" or z.read(first).strip() != ORA_MIMETYPE:
            raise ValueError(f"{path}: not an OpenRaster file (mimetype must be the first entry)")
        root = ET.fromstring(z.read("stack.xml"))

        def load(name: str) -> Image.Image:
            img = Image.open(io.BytesIO(z.read(name)))
            img.load()
            return img

        layers = [(el.get("name"), load(el.get("src"))) for el in root.iter("layer")]
        return {
            "size": (int(root.get("w")), int(root.get("h"))),
            "layers": layers,
            "merged": load("mergedimage.png"),
            "thumbnail": load("Thumbnails/thumbnail.png"),
        }


def write_psd(path: str | os.PathLike, background, foregrounds, alphas) -> None:
    """Write :func:`psd_bytes` atomically."""
    atomic_write_bytes(path, psd_bytes(background, foregrounds, alphas))


def write_ora(path: str | os.PathLike, background, foregrounds, alphas) -> None:
    """Write :func:`ora_bytes` atomically."""
    atomic_write_bytes(path, ora_bytes(background, foregrounds, alphas))


def check_writable(out_dir: str | os.PathLike) -> Path:
    """Fail early (before any work) when ``out_dir`` cannot be created as a new, complete folder.

    Raises:
        OutputExistsError: ``out_dir`` exists and is not empty (a ``FileExistsError``).
        OutputPermissionError: its parent folder cannot be created or written (a ``PermissionError``).
    """
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputExistsError(
            f"output folder {out_dir} already exists and is not empty; choose another out="
        )
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPermissionError(
            f"output folder {out_dir}: cannot create {parent} ({e.strerror or e})"
        ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPermissionError(f"output folder {out_dir}: {parent} is not writable")
    try:  # os.access can say yes where creating fails (read-only or special file systems)
        temp_sibling(out_dir, folder=True).rmdir()
    except OSError as e:
        raise OutputPermissionError(
            f"output folder {out_dir}: {parent} is not writable ({e.strerror or e})"
        ) from None
    return out_dir


def save_decomposition(
    out_dir: str | os.PathLike,
    composite: torch.Tensor,
    background: torch.Tensor,
    foregrounds: Sequence[torch.Tensor],
    alphas: Sequence[torch.Tensor],
    meta: Mapping,
) -> Path:
    """Write the output folder of one decomposition (docs/architecture.md, "Output folder of a decomposition").

    One foreground: ``foreground.png`` (RGBA) and ``alpha.png``; N: ``foreground_1..N.png`` and
    ``alpha_1..N.png``, top-most first. Also ``composite.png``, ``background.png``,
    ``layers.psd``, ``layers.ora``, ``preview.png`` (:mod:`layeringdiff.preview`) and
    ``meta.json``. Everything goes into a temporary sibling
    folder that is renamed to ``out_dir`` at the end; on any error nothing is left behind.

    Args:
        out_dir: the folder to create (must not exist, or be empty).
        composite: (3, H, W); background: (3, H, W); foregrounds: list of (3, H, W);
            alphas: list of (1, H, W); all float in [0, 1] (batch dimension of 1 allowed).
        meta: JSON-serialisable run description.

    Returns:
        ``out_dir`` as an absolute path.
    """

    def unbatch(x: torch.Tensor) -> torch.Tensor:
        return x[0] if x.ndim == 4 else x

    composite, background = unbatch(composite).cpu(), unbatch(background).cpu()
    foregrounds = [unbatch(f).cpu() for f in foregrounds]
    alphas = [unbatch(a).cpu() for a in alphas]
    out_dir = check_writable(out_dir)
    with atomic_dir(out_dir) as tmp:  # an empty out_dir is replaced by the rename
        tensor_to_pil(composite).save(tmp / "composite.png")
        tensor_to_pil(background).save(tmp / "background.png")
        single = len(foregrounds) == 1
        for i, (f, a) in enumerate(zip(foregrounds, alphas)):
            suffix = "" if single else f"_{i + 1}"
            foreground_rgba(f, a).save(tmp / f"foreground{suffix}.png")
            tensor_to_pil(a).save(tmp / f"alpha{suffix}.png")
        (tmp / "layers.psd").write_bytes(psd_bytes(background, foregrounds, alphas))
        (tmp / "layers.ora").write_bytes(ora_bytes(background, foregrounds, alphas))
        preview_image(composite, background, foregrounds, alphas).save(tmp / PREVIEW_NAME)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out_dir
