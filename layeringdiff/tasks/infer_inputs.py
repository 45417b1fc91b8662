"""infer.py's settings -> a checked :class:`~layeringdiff.pipeline.request.LayerRequest`.

Reads the files the settings name (image, mask, trimap, alpha, control image) and turns the
command-line values into one foreground spec per layer. Cheap: runs before any model is loaded.
"""

from __future__ import annotations

import json

from omegaconf import DictConfig, ListConfig, OmegaConf

from layeringdiff.images import image_size, load_mask, load_rgb
from layeringdiff.pipeline.boxes import check_box
from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.foreground import ForegroundSpec, sample_dir
from layeringdiff.pipeline.request import MAX_SIZE, LayerRequest, check_image_dims, check_image_size

FOREGROUND_KEYS = ("foreground", "box", "mask", "trimap", "alpha")
REQUEST_KEYS = ("image", "prompt", "foreground_indices", "negative_prompt", "control_image", *FOREGROUND_KEYS)


def plain(x):
    """A config node as plain Python (lists, dicts); anything else unchanged."""
    return OmegaConf.to_container(x, resolve=True) if isinstance(x, (DictConfig, ListConfig)) else x


def _is_multi(value, depth: int) -> bool:
    """Is ``value`` a list of per-layer values whose own nesting depth is ``depth``?"""
    if not isinstance(value, list) or not value:
        return False
    inner = value[0]
    for _ in range(depth):
        if not isinstance(inner, list):
            return False
        inner = inner[0] if inner else None
    return True


def per_layer(value, depth: int) -> list:
    """Normalise a CLI value to one entry per layer.

    ``depth`` is the nesting of ONE layer's value: 0 for a text/path ("a cat" or ["a cat", "a dog"]),
    1 for a box or an index list ([0,1,2] or [[0,1,2],[5,6]]).
    """
    value = plain(value)
    if depth == 0:
        return list(value) if isinstance(value, list) else [value]
    return value if _is_multi(value, depth) else [value]


def _spec(key: str, value, size: tuple[int, int]) -> ForegroundSpec:
    if key == "foreground":
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"foreground text must be a non-empty string, got {value!r}")
        return ForegroundSpec(text=value)
    if key == "box":
        return ForegroundSpec(box=check_box(value, *size))  # before any model is loaded
    tensor = load_mask(value, max_side=MAX_SIZE)  # an oversized file is refused from its header
    if tuple(tensor.shape[-2:]) != size:
        raise InputError(
            f"{key} {value} is {tensor.shape[-1]}x{tensor.shape[-2]} but the image is {size[1]}x{size[0]}"
        )
    return ForegroundSpec(**{key: tensor})


def foreground_specs(item: dict, size: tuple[int, int]) -> list[ForegroundSpec]:
    """Build the per-layer foreground specs from ``foreground``/``box``/``mask``/``trimap``/``alpha``."""
    given = [k for k in FOREGROUND_KEYS if item.get(k) is not None]
    if len(given) > 1:
        raise InputError(f"give only one of {', '.join(FOREGROUND_KEYS)} (got {', '.join(given)})")
    if not given:
        return []
    key = given[0]
    return [_spec(key, v, size) for v in per_layer(item[key], 1 if key == "box" else 0)]


def bundled_sample(name: str) -> dict:
    """The bundled real photograph and its rough mask (data/samples/<name>.json)."""
    info_path = sample_dir() / f"{name}.json"
    if not info_path.is_file():
        raise InputError(f"no bundled sample {info_path}")
    info = json.loads(info_path.read_text())
    return {"image": str(sample_dir() / info["image"]), "mask": str(sample_dir() / info["mask"])}


def request_from_item(item: dict, height: int | None = None, width: int | None = None) -> LayerRequest:
    """Read and check one request's inputs (``item``: the :data:`REQUEST_KEYS` settings).

    Raises:
        InputError, ImageReadError: with one-line messages.
    """
    if item.get("prompt") is not None and item.get("image") is None:
        if any(item.get(k) is not None for k in ("box", "mask", "trimap", "alpha")):
            raise InputError(
                "in text mode give foreground_indices=[...] or foreground=TEXT (box/mask/... need image=)"
            )
        request = LayerRequest(
            prompt=str(item["prompt"]),
            foregrounds=foreground_specs(item, (0, 0)),
            negative_prompt=item.get("negative_prompt"),
        )
        if not request.foregrounds and item.get("foreground_indices") is not None:
            request.foreground_indices = per_layer(item["foreground_indices"], 1)
        if item.get("control_image") is not None:
            request.control_image = load_rgb(item["control_image"], max_side=MAX_SIZE)
        return request.check(height, width)
    if item.get("image") is None or item.get("prompt") is not None:  # neither, or both: check() says which
        return LayerRequest(prompt=item.get("prompt"), image=item.get("image")).check()
    # from the file's header: a 9000x9000 PNG of 100 KB is refused without decoding its 1.6 GB
    check_image_dims(*reversed(image_size(item["image"])), str(item["image"]))
    image = load_rgb(item["image"])
    check_image_size(image, str(item["image"]))  # before the masks are read, before any model is loaded
    request = LayerRequest(image=image, source=str(item["image"]))
    request.foregrounds = foreground_specs(item, tuple(image.shape[-2:]))
    return request.check()
