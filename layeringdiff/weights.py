"""The one place that resolves every pretrained component, offline.

A component is named in config either by a local path or by a Hugging Face id
(``owner/name``) that must already be in the local HF cache. Nothing is downloaded. When a
component is missing, :class:`MissingWeightsError` says what was looked for, where, and what
to put there -- before any work starts (call :func:`require` up front).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from layeringdiff.errors import UserError

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


class MissingWeightsError(UserError, FileNotFoundError):
    """A pretrained component is not available locally. The message is one line."""


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _check_folder(folder: Path, component: str, subfolder: str | None, required: Iterable[str]) -> Path:
    root = folder / subfolder if subfolder else folder
    if not root.is_dir():
        raise MissingWeightsError(f"{component}: folder {root} does not exist")
    missing = [r for r in required if not (root / r).exists()]
    if missing:
        raise MissingWeightsError(f"{component}: {root} is incomplete, missing {', '.join(missing)}")
    return folder


def _has_weights(root: Path) -> bool:
    return any(p.suffix in WEIGHT_SUFFIXES for p in root.rglob("*") if p.is_file())


def resolve_pretrained(
    name_or_path: str | os.PathLike,
    component: str,
    subfolder: str | None = None,
    required: Iterable[str] = ("config.json",),
    need_weights: bool = True,
) -> Path:
    """Find a ``save_pretrained``-style folder for ``component`` without touching the network.

    Args:
        name_or_path: a local folder, or a Hugging Face id looked up in the local HF cache.
        component: human name used in errors, e.g. ``"SD2-inpainting UNet"``.
        subfolder: the part of the folder that must hold ``required`` (e.g. ``"unet"``).
        required: file names that must exist in ``subfolder``.
        need_weights: also require at least one weight file (.safetensors/.bin/...).

    Returns:
        The root folder to pass to ``from_pretrained`` (with ``subfolder=`` where used).

    Raises:
        MissingWeightsError: with a one-line message naming what is missing and where it was sought.
    """
    required = tuple(required)
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        folder = _check_folder(path, component, subfolder, required)
    elif _HF_ID.match(text) and not text.startswith((".", "/")):
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(text, local_files_only=True))
        except Exception:
            raise MissingWeightsError(
                f"{component}: '{text}' is neither a local folder nor in the Hugging Face cache "
                f"({hf_cache_dir()}); on a machine with internet run `hf download {text}` (or save the "
                f"model folder somewhere and point the config at that path)"
            ) from None
        folder = _check_folder(folder, component, subfolder, required)
    else:
        raise MissingWeightsError(
            f"{component}: no folder at {path.resolve()}; put the model folder there "
            f"(config.json + *.safetensors) or set the config entry to a Hugging Face id in the local cache"
        )
    root = folder / subfolder if subfolder else folder
    if need_weights and not _has_weights(root):
        raise MissingWeightsError(f"{component}: {root} has a config but no weight file (*.safetensors)")
    return folder


def resolve_file(path: str | os.PathLike, component: str, hint: str = "") -> Path:
    """Find a single weight file (e.g. the Inception or CLIP checkpoint) or explain where to put it."""
    p = Path(path).expanduser()
    if not p.is_file():
        extra = f"; {hint}" if hint else ""
        raise MissingWeightsError(f"{component}: no file at {p.resolve()}{extra}")
    return p


def require(components: Mapping[str, Mapping]) -> dict[str, Path]:
    """Resolve several components at once, reporting every missing one in a single message.

    Args:
        components: ``{component name: kwargs for resolve_pretrained (name_or_path, subfolder, ...)}``;
            a spec with ``file: true`` is resolved with :func:`resolve_file`.
    """
    found, errors = {}, []
    for name, spec in components.items():
        spec = dict(spec)
        try:
            if spec.pop("file", False):
                found[name] = resolve_file(spec["name_or_path"], name, spec.get("hint", ""))
            else:
                found[name] = resolve_pretrained(component=name, **spec)
        except MissingWeightsError as e:
            errors.append(str(e))
    if errors:
        raise MissingWeightsError(" | ".join(errors))
    return found
