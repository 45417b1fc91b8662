"""FBA Matting around the network: trimap encodings, inference, and the weights on disk.

* :func:`trimap_encodings` -- the six Gaussian distance encodings of the trimap FBA takes as input;
* :class:`FBAMatting` -- ``(image (3, H, W), trimap (1, H, W) in {0, 0.5, 1}) -> {alpha,
  foreground, background}``, with the authors' inference fix-ups: alpha is 0 / 1 on the definite
  trimap regions, F is the image where alpha = 1 and B the image where alpha = 0;
* :func:`save_pretrained` / :func:`load_pretrained` -- a folder with ``config.json`` and
  ``model.safetensors`` (strict load), resolved offline by :mod:`layeringdiff.weights`;
* :func:`convert_released` -- the one-time conversion of the authors' pickled ``FBA.pth`` (read with
  ``weights_only=True``) into that folder (``python data/convert_fba.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from layeringdiff.compositing import check_trimap
from layeringdiff.errors import MissingFileError, UserError
from layeringdiff.networks.fba import FBANet
from layeringdiff.weights import MissingWeightsError, resolve_pretrained

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
COMPONENT = "FBA Matting"
# Encoding widths: 0.02, 0.08 and 0.16 of a fixed length of 320 px, whatever the image size.
ENCODING_SIGMAS = tuple(f * 320.0 for f in (0.02, 0.08, 0.16))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MULTIPLE = 8  # the network's output stride


class FBAWeightsError(UserError, ValueError):
    """A checkpoint or converted folder that is not the FBA network's (one line)."""


def two_channel_trimap(trimap: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) trimap in {0, 0.5, 1} -> (B, 2, H, W) float: [definite background, definite fg]."""
    return torch.cat([(trimap == 0), (trimap == 1)], 1).float()


def trimap_encodings(trimap2: torch.Tensor) -> torch.Tensor:
    """The six Gaussian distance encodings of a two-channel trimap, (B, 2, H, W) -> (B, 6, H, W).

    For each definite region k (background, then foreground) with d the Euclidean distance of every
    pixel to the region, channels 3k..3k+2 are exp(-d^2 / (2 sigma^2)) for the three
    :data:`ENCODING_SIGMAS`; an empty region gives zeros.
    """
    out = torch.zeros(trimap2.shape[0], 6, *trimap2.shape[-2:])
    masks = trimap2.detach().cpu().numpy() > 0.5
    for b in range(masks.shape[0]):
        for k in range(2):
            if not masks[b, k].any():
                continue
            # distanceTransform measures to the nearest zero pixel: zero on the region itself
            outside = (~masks[b, k]).astype(np.uint8)
            d2 = (
                torch.from_numpy(cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)).double()
                ** 2
            )
            for j, sigma in enumerate(ENCODING_SIGMAS):
                out[b, 3 * k + j] = torch.exp(-d2 / (2 * sigma**2)).float()
    return out.to(trimap2.device)


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """ImageNet mean / std normalisation of (B, 3, H, W) RGB in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image - mean) / std


class FBAMatting:
    """Alpha, foreground and background of an image from its trimap, with a :class:`FBANet`.

    Inputs whose sides are not multiples of 8 are edge-padded and the outputs cropped (ours; the
    authors' demo resizes instead, which is the identity for the 512 x 512 test set).

    Args:
        net: the network (eval mode is set here).
        device: where it runs; inputs and outputs stay on the CPU.
    """

    name = "fba"

    def __init__(self, net: FBANet, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> FBAMatting:
        """Load a converted folder (see :func:`load_pretrained`)."""
        return cls(load_pretrained(path), device)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, trimap: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (3, H, W) in [0, 1], trimap (1, H, W) in {0, 0.5, 1} -> ``alpha`` (1, H, W),
        ``foreground`` and ``background`` (3, H, W), float32 on the CPU, all in [0, 1]."""
        if image.ndim != 3 or image.shape[0] != 3 or trimap.shape != (1, *image.shape[-2:]):
            raise ValueError(
                f"FBA Matting: need image (3, H, W) and trimap (1, H, W), got {tuple(image.shape)} "
                f"and {tuple(trimap.shape)}"
            )
        check_trimap(trimap)
        h, w = image.shape[-2:]
        ph, pw = -h % MULTIPLE, -w % MULTIPLE
        img = F.pad(image[None].float().cpu(), (0, pw, 0, ph), mode="replicate")
        tri2 = two_channel_trimap(F.pad(trimap[None].float().cpu(), (0, pw, 0, ph), mode="replicate"))
        dtype = next(self.net.parameters()).dtype
        args = [img, tri2, normalize_image(img), trimap_encodings(tri2)]
        out = self.net(*(a.to(self.device, dtype) for a in args))[0, :, :h, :w].float().cpu()
        return finish(out, image.float().cpu(), trimap.cpu())


def finish(out: torch.Tensor, image: torch.Tensor, trimap: torch.Tensor) -> dict[str, torch.Tensor]:
    """The authors' fix-ups of the (7, H, W) network output on the definite regions."""
    alpha = out[:1].clamp(0, 1)
    alpha = torch.where(trimap == 0, 0.0, torch.where(trimap == 1, 1.0, alpha))
    fg = torch.where(alpha == 1, image, out[1:4].clamp(0, 1))
    bg = torch.where(alpha == 0, image, out[4:7].clamp(0, 1))
    return {"alpha": alpha, "foreground": fg, "background": bg}


def save_pretrained(net: FBANet, path: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``model.safetensors`` into the new folder ``path`` (atomically)."""
    from safetensors.torch import save_file

    from layeringdiff.files import atomic_dir

    path = Path(path)
    with atomic_dir(path) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "model": "FBANet"})
        (tmp / CONFIG_NAME).write_text(json.dumps(net.config, indent=2) + "\n")
    return path


def _missing_hint(path: str | os.PathLike) -> str:
    return (
        f"convert the authors' FBA.pth once with `python data/convert_fba.py --checkpoint FBA.pth "
        f"--out {Path(path).expanduser()}` (see docs/evaluation.md)"
    )


def load_pretrained(path: str | os.PathLike) -> FBANet:
    """The network from a :func:`save_pretrained` folder, loaded strictly (every name and shape).

    Raises:
        MissingWeightsError: one line saying where the folder was sought and how to make it.
        FBAWeightsError: the folder's weights do not fit its config.
    """
    from safetensors.torch import load_file

    try:
        root = resolve_pretrained(path, COMPONENT, required=(CONFIG_NAME, WEIGHTS_NAME))
    except MissingWeightsError as e:
        raise MissingWeightsError(f"{e}; {_missing_hint(path)}") from None
    try:
        config = json.loads((root / CONFIG_NAME).read_text())
        net = FBANet(**config)
    except (TypeError, ValueError) as e:  # not JSON, unknown keys, widths that do not fit
        raise FBAWeightsError(f"{COMPONENT}: bad {root / CONFIG_NAME}: {e}") from None
    weights = root / WEIGHTS_NAME
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors' own error type for a truncated or foreign file
        raise FBAWeightsError(f"{COMPONENT}: cannot read {weights}: {e}") from None
    load_strict(net, state, str(weights))
    return net.eval()


def load_strict(net: FBANet, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` whose failure is one line naming ``source``."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1:3]
        raise FBAWeightsError(
            f"{COMPONENT}: {source} does not match the network: {' '.join(first).strip()}"
        ) from None


def read_released(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The authors' ``FBA.pth`` as a state dict, unpickled with ``weights_only=True`` (tensors only)."""
    checkpoint = Path(checkpoint).expanduser()
    if not checkpoint.is_file():
        raise MissingFileError(f"{COMPONENT}: no checkpoint at {checkpoint.resolve()}")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or a pickle with more than tensors
        raise FBAWeightsError(
            f"{COMPONENT}: cannot read {checkpoint} as a weights-only state dict ({e})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FBAWeightsError(f"{COMPONENT}: {checkpoint} is not a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def convert_released(checkpoint: str | os.PathLike, out: str | os.PathLike, **config) -> Path:
    """Turn the authors' ``FBA.pth`` into a safetensors folder at ``out`` after a strict load into
    :class:`FBANet` (``config``: its size; the defaults are the released model)."""
    net = FBANet(**config)
    load_strict(net, read_released(checkpoint), str(checkpoint))
    return save_pretrained(net, out)
