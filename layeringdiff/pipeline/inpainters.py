"""Background inpainters: fill the hidden background (the pixels behind an opaque foreground).

An inpainter is ``inpainter(image (3, H, W), hole (1, H, W) bool, generator) -> (3, H, W)``
float32 on the CPU, equal to ``image`` outside ``hole``. The members of ``configs/inpainter/``
(a ``kind`` key picks one; :func:`build_inpainter` builds it):

* ``telea`` -- OpenCV's Telea fast marching (``cv2.inpaint``): smooth, fast, but a large hole
  becomes a blurred smear of its rim colours;
* ``fsr`` -- OpenCV contrib's frequency selective reconstruction (``cv2.xphoto.inpaint``, FSR
  fast or best), which continues edges and texture into the hole. It is slow on large holes, so
  the hole's neighbourhood is cropped and, when larger than ``max_side``, processed downscaled
  (the fill is then smoother than the image; the pixels outside the hole are never touched);
* ``sd2`` -- Stable Diffusion 2 inpainting through diffusers
  (:class:`~layeringdiff.pipeline.baselines.SD2Inpainter`) on the weights FBDD starts from, at
  a fixed seed; when the weights are missing it logs one line and uses ``fallback`` instead.

The paper does not name the inpainter of its "+ Inp." baselines: every choice here is ours.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch

from layeringdiff.errors import ConfigError
from layeringdiff.images import tensor_to_uint8
from layeringdiff.pipeline.baselines import SD2Inpainter, inpaint_opencv
from layeringdiff.weights import MissingWeightsError

log = logging.getLogger(__name__)

KINDS = ("telea", "fsr", "sd2")
FSR_VARIANTS = {"fast": "INPAINT_FSR_FAST", "best": "INPAINT_FSR_BEST"}


class TeleaInpainter:
    """OpenCV Telea inpainting with ``radius`` pixels of neighbourhood."""

    name = "telea"

    def __init__(self, radius: int = 5) -> None:
        self.radius = int(radius)

    def __call__(self, image: torch.Tensor, hole: torch.Tensor, generator=None) -> torch.Tensor:
        return inpaint_opencv(image.float().cpu(), hole.cpu(), self.radius)


def _hole_window(hole: np.ndarray, margin: float, min_margin: int) -> tuple[slice, slice]:
    """The hole's bounding box grown by ``margin`` x its size (at least ``min_margin`` px), clipped."""
    ys, xs = np.nonzero(hole)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    my = max(min_margin, int(margin * (y1 - y0)))
    mx = max(min_margin, int(margin * (x1 - x0)))
    h, w = hole.shape
    return slice(max(0, y0 - my), min(h, y1 + my)), slice(max(0, x0 - mx), min(w, x1 + mx))


class FSRInpainter:
    """OpenCV contrib FSR inpainting of the hole's neighbourhood, at most ``max_side`` px on a side.

    Args:
        variant: ``fast`` (``INPAINT_FSR_FAST``) or ``best`` (``INPAINT_FSR_BEST``, ~20x slower).
        max_side: the cropped window is downscaled to this long side before FSR (``None``: never).
        margin: the window is the hole's bounding box grown by this fraction of its size.
    """

    name = "fsr"

    def __init__(self, variant: str = "fast", max_side: int | None = 128, margin: float = 0.25) -> None:
        if variant not in FSR_VARIANTS:
            raise ConfigError(
                f"inpainter fsr: variant must be one of {', '.join(FSR_VARIANTS)}, got {variant!r}"
            )
        if not hasattr(cv2, "xphoto"):
            raise ConfigError(
                "inpainter fsr needs cv2.xphoto (opencv-contrib-python-headless, which replaces "
                "opencv-python-headless); run scripts/setup.sh, or use inpainter kind telea"
            )
        self.flag = getattr(cv2.xphoto, FSR_VARIANTS[variant])
        self.variant, self.max_side, self.margin = variant, max_side, float(margin)

    def __call__(self, image: torch.Tensor, hole: torch.Tensor, generator=None) -> torch.Tensor:
        image, hole = image.float().cpu(), hole.cpu()
        mask = hole[0].numpy().astype(bool)
        if not mask.any():
            return image.clone()
        if mask.all():  # nothing to continue from: Telea's answer (a constant) is as good
            return inpaint_opencv(image, hole)
        ys, xs = _hole_window(mask, self.margin, 8)
        rgb = np.ascontiguousarray(tensor_to_uint8(image)[ys, xs])
        valid = (~mask[ys, xs]).astype(np.uint8)
        h, w = valid.shape
        scale = 1.0 if self.max_side is None else min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            rgb_s = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            valid_s = (cv2.resize(valid, size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
        else:
            rgb_s, valid_s = rgb, valid
        rgb_s[valid_s == 0] = 0  # FSR reads only the valid pixels; keep the hole's old colour out
        out = np.zeros_like(rgb_s)
        cv2.xphoto.inpaint(rgb_s, valid_s, out, self.flag)
        if scale < 1.0:
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
        filled = image.clone()
        filled[:, ys, xs] = torch.from_numpy(out).permute(2, 0, 1).float() / 255.0
        return torch.where(hole, filled, image)


class SeededSD2Inpainter:
    """:class:`SD2Inpainter` at a fixed ``seed`` (``None``: the caller's generator)."""

    name = "sd2"

    def __init__(self, inpainter: SD2Inpainter, seed: int | None = 0) -> None:
        self.inpainter, self.seed = inpainter, seed

    def __call__(self, image: torch.Tensor, hole: torch.Tensor, generator=None) -> torch.Tensor:
        if self.seed is not None:
            generator = torch.Generator().manual_seed(int(self.seed))
        return self.inpainter(image, hole, generator).float().cpu()


def _options(spec: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: spec[k] for k in keys if spec.get(k) is not None}


def build_inpainter(spec: Mapping[str, Any] | None, device="cpu"):
    """The inpainter a ``configs/inpainter/`` node describes (``None`` or empty: Telea).

    Keys other than those of its ``kind`` are ignored (a node merged over another kind may carry
    them). ``sd2`` with missing weights logs a warning and builds its ``fallback`` kind.
    """
    spec = dict(spec or {})
    kind = spec.get("kind", "telea")
    if kind == "telea":
        return TeleaInpainter(**_options(spec, ("radius",)))
    if kind == "fsr":
        return FSRInpainter(**_options(spec, ("variant", "max_side", "margin")))
    if kind != "sd2":
        raise ConfigError(f"inpainter kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        if not spec.get("weights"):
            raise MissingWeightsError("SD2 inpainting: no weights configured (inpainter.weights)")
        sd2 = SD2Inpainter.from_pretrained(
            spec["weights"],
            device,
            torch.float32,
            **_options(spec, ("prompt", "num_inference_steps", "guidance_scale")),
        )
    except MissingWeightsError as e:
        fallback = spec.get("fallback") or "telea"
        if fallback == "sd2":
            raise
        log.warning("inpainter sd2: weights missing (%s); using the %s fallback (ours)", e, fallback)
        return build_inpainter({**spec, "kind": fallback}, device)
    return SeededSD2Inpainter(sd2, spec.get("seed", 0))
