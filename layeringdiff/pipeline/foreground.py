"""Stage 2, foreground determination: text -> box -> mask -> trimap -> alpha (Matte-Anything).

Grounding DINO finds the box for the foreground prompt (box and text thresholds 0.25/0.25), SAM
turns the best box into a mask, the mask becomes a trimap by erosion/dilation (10x10 kernel,
5 iterations each; unknown = 0.5), a second Grounding DINO query for transparent things turns
definite-FG pixels inside its boxes into unknown (thresholds 0.5/0.25), and ViTMatte turns the
trimap into an alpha. A user may enter the chain later with a box, a mask, a trimap or an
alpha. Without deep-model weights a box is segmented with GrabCut and the trimap is matted
with closed-form matting (our exact sparse solver, :mod:`layeringdiff.pipeline.closed_form`; pymatting's
as an option), so real-image decomposition works on any machine.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from layeringdiff.compositing import (
    TRIMAP_BG,
    TRIMAP_FG,
    TRIMAP_ITERATIONS,
    TRIMAP_KERNEL_SIZE,
    TRIMAP_UNKNOWN,
    check_trimap,
    trimap_from_mask,
)
from layeringdiff.pipeline.boxes import box_mask, check_box, grabcut_mask
from layeringdiff.pipeline.errors import InputError, NoForegroundError
from layeringdiff.pipeline.hf_models import (
    BOX_THRESHOLD,
    TEXT_THRESHOLD,
    TRANSPARENCY_BOX_THRESHOLD,
    TRANSPARENCY_TEXT_THRESHOLD,
    GroundingDetector,
    SamSegmenter,
    VitMatteMatting,
)

log = logging.getLogger(__name__)

TRANSPARENCY_QUERY = "glass.lens.crystal.diamond.bubble.bulb.web.grid"


CLOSED_FORM_SOLVERS = ("direct", "pymatting")


def _float64(x: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy (converted in numpy: torch's thread pool costs more CPU time here)."""
    x = x.detach().cpu()
    return (x if x.dtype in (torch.float32, torch.float64) else x.double()).numpy().astype(np.float64)


def closed_form_matting(image: torch.Tensor, trimap: torch.Tensor, solver: str = "direct") -> torch.Tensor:
    """Levin et al. closed-form matting of ``image`` (3, H, W) with ``trimap`` (1, H, W).

    Args:
        solver: ``direct`` -- the Laplacian of the windows that reach an unknown pixel and an exact
            sparse Cholesky solve (:mod:`layeringdiff.pipeline.closed_form`; no numba, no pymatting);
            ``pymatting`` -- pymatting's ``estimate_alpha_cf`` (conjugate gradients, incomplete
            Cholesky), the reference it matches, a few times slower. Both use pymatting's defaults
            (3x3 windows, epsilon 1e-7, definite pixels: trimap >= 0.9 or <= 0.1).
    """
    if solver not in CLOSED_FORM_SOLVERS:
        raise ValueError(
            f"closed-form matting: solver must be one of {', '.join(CLOSED_FORM_SOLVERS)}, got {solver!r}"
        )
    img = _float64(image).transpose(1, 2, 0)
    tri = _float64(trimap[0])
    if not (tri == TRIMAP_UNKNOWN).any():
        return (trimap >= TRIMAP_FG).float().cpu()
    if not (tri == TRIMAP_FG).any() or not (tri == TRIMAP_BG).any():
        missing = "foreground (1)" if not (tri == TRIMAP_FG).any() else "background (0)"
        raise InputError(
            f"the trimap has no definite {missing} pixels, so closed-form matting cannot run; "
            "give a larger/smaller mask or box, or a trimap"
        )
    if solver == "direct":
        from layeringdiff.pipeline.closed_form import NotPositiveDefinite, closed_form_alpha

        try:
            return torch.from_numpy(closed_form_alpha(img, tri).astype(np.float32))[None]
        except NotPositiveDefinite as e:  # not for a trimap with both definite regions: kept as a net
            log.warning("closed-form matting: %s; using pymatting's solver", e)
    from pymatting import estimate_alpha_cf

    # pymatting prints a multi-line "PERFORMANCE WARNING" banner to stdout when its preconditioner
    # retries with a larger shift; keep the result, log one line instead.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        alpha = estimate_alpha_cf(img, tri)
    if printed.getvalue().strip():
        log.info("closed-form matting: pymatting retried its preconditioner (slower, same result)")
    return torch.from_numpy(np.clip(alpha, 0, 1)).float()[None]


def apply_transparency_boxes(trimap: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Inside each box (pixel x0, y0, x1, y1), definite-FG trimap pixels (1) become unknown (0.5)."""
    out = trimap.clone()
    h, w = out.shape[-2:]
    for x0, y0, x1, y1 in boxes.tolist():
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1, r1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        region = out[..., r0:r1, c0:c1]
        region[region == TRIMAP_FG] = TRIMAP_UNKNOWN
    return out


def check_alpha(alpha: torch.Tensor, source: str) -> None:
    """An alpha that is all 0 (no foreground) or all 1 (no background) cannot be layered."""
    if float(alpha.max()) < 1.0 / 255.0:
        raise InputError(f"{source}: the alpha is all 0, there is no foreground to separate")
    if float(alpha.min()) > 1.0 - 1.0 / 255.0:
        raise InputError(f"{source}: the alpha is all 1, the foreground covers the whole image")


@dataclass
class ForegroundSpec:
    """How one foreground is given: exactly one of ``text``, ``box``, ``mask``, ``trimap``, ``alpha``.

    ``mask``/``trimap``/``alpha`` are (1, H, W) tensors in [0, 1] of the image's size.
    """

    text: str | None = None
    box: list[float] | None = None
    mask: torch.Tensor | None = None
    trimap: torch.Tensor | None = None
    alpha: torch.Tensor | None = None

    def kind(self) -> str:
        given = [k for k in ("text", "box", "mask", "trimap", "alpha") if getattr(self, k) is not None]
        if len(given) != 1:
            raise InputError(
                f"give exactly one of text, box, mask, trimap, alpha for a foreground (got {given or 'none'})"
            )
        return given[0]


@dataclass
class ForegroundResult:
    """Alpha (1, H, W) and the intermediate products of foreground determination."""

    alpha: torch.Tensor
    trimap: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    box: list[float] | None = None
    score: float | None = None
    transparent_boxes: list[list[float]] = field(default_factory=list)
    matting: str = ""


class ForegroundDetermination:
    """The foreground determination stage; every deep component is optional.

    Args:
        detector: Grounding DINO, needed for a text foreground; also runs the transparency query.
        segmenter: SAM; without it a box is segmented with GrabCut.
        matting: ViTMatte; without it the trimap is matted with closed-form matting.
        box_threshold, text_threshold: foreground query thresholds (0.25 / 0.25).
        transparency_query, transparency_box_threshold, transparency_text_threshold: the second
            query (0.5 / 0.25); ``transparency_query=None`` turns the rule off.
        kernel_size, erode_iterations, dilate_iterations: trimap from mask (10, 5, 5).
    """

    def __init__(
        self,
        detector: GroundingDetector | None = None,
        segmenter: SamSegmenter | None = None,
        matting: VitMatteMatting | None = None,
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
        transparency_query: str | None = TRANSPARENCY_QUERY,
        transparency_box_threshold: float = TRANSPARENCY_BOX_THRESHOLD,
        transparency_text_threshold: float = TRANSPARENCY_TEXT_THRESHOLD,
        kernel_size: int = TRIMAP_KERNEL_SIZE,
        erode_iterations: int = TRIMAP_ITERATIONS,
        dilate_iterations: int = TRIMAP_ITERATIONS,
    ):
        self.detector, self.segmenter, self.matting = detector, segmenter, matting
        self.box_threshold, self.text_threshold = box_threshold, text_threshold
        self.transparency_query = transparency_query
        self.transparency_box_threshold = transparency_box_threshold
        self.transparency_text_threshold = transparency_text_threshold
        self.kernel_size, self.erode_iterations, self.dilate_iterations = (
            kernel_size,
            erode_iterations,
            dilate_iterations,
        )

    @classmethod
    def from_pretrained(
        cls,
        grounding_dino: str | None = None,
        sam: str | None = None,
        vitmatte: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        offload: bool = False,
        **kwargs,
    ) -> ForegroundDetermination:
        """Load the components named by local folders / cached HF ids; ``None`` leaves one out.

        Args:
            offload: keep the models in CPU memory and move each to ``device`` only while it runs.
        """
        load = {"device": device, "dtype": dtype, "offload": offload}
        return cls(
            detector=GroundingDetector.from_pretrained(grounding_dino, **load) if grounding_dino else None,
            segmenter=SamSegmenter.from_pretrained(sam, **load) if sam else None,
            matting=VitMatteMatting.from_pretrained(vitmatte, **load) if vitmatte else None,
            **kwargs,
        )

    def detect_box(self, image: torch.Tensor, text: str) -> tuple[list[float], float]:
        """Best Grounding DINO box for ``text``; :class:`NoForegroundError` when none passes."""
        if self.detector is None:
            raise InputError(
                f"foreground text {text!r} needs Grounding DINO weights (pipeline.foreground.grounding_dino); "
                "without them give box=[x0,y0,x1,y1], mask=, trimap= or alpha="
            )
        dets = self.detector(image, text, self.box_threshold, self.text_threshold)
        if len(dets.scores) == 0:
            raise NoForegroundError(
                f"no foreground found for {text!r}: best box score {dets.best_score:.3f} is not above the threshold "
                f"{self.box_threshold}; give a box instead, e.g. box=[x0,y0,x1,y1]"
            )
        return [float(v) for v in dets.boxes[0]], float(dets.scores[0])

    def trimap_from_mask(
        self, image: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[list[float]]]:
        """Erode/dilate the mask into a trimap, then apply the transparency query (when a detector is loaded)."""
        erode, dilate = self.erode_iterations, self.dilate_iterations
        trimap = trimap_from_mask(mask, self.kernel_size, erode, dilate)
        # A thin object (or a small image) can vanish under 5 erosions, or the dilated band can cover
        # the whole image; then use fewer iterations so both definite regions survive.
        while erode > 0 and not (trimap == TRIMAP_FG).any() or dilate > 0 and not (trimap == TRIMAP_BG).any():
            erode -= int(erode > 0 and not (trimap == TRIMAP_FG).any())
            dilate -= int(dilate > 0 and not (trimap == TRIMAP_BG).any())
            trimap = trimap_from_mask(mask, self.kernel_size, erode, dilate)
        if (erode, dilate) != (self.erode_iterations, self.dilate_iterations):
            log.warning(
                "trimap: used %d erosions and %d dilations (the mask is too thin/large for more)",
                erode,
                dilate,
            )
        boxes: list[list[float]] = []
        if self.detector is not None and self.transparency_query:
            dets = self.detector(
                image,
                self.transparency_query,
                self.transparency_box_threshold,
                self.transparency_text_threshold,
            )
            if len(dets.scores):
                trimap = apply_transparency_boxes(trimap, dets.boxes)
                boxes = dets.boxes.tolist()
        return trimap, boxes

    def matte(self, image: torch.Tensor, trimap: torch.Tensor) -> tuple[torch.Tensor, str]:
        if self.matting is not None:
            return self.matting(image, trimap), "vitmatte"
        return closed_form_matting(image, trimap), "closed_form"

    def __call__(self, image: torch.Tensor, spec: ForegroundSpec) -> ForegroundResult:
        """Determine the alpha of one foreground of ``image`` (3, H, W)."""
        kind = spec.kind()
        h, w = image.shape[-2:]
        for name in ("mask", "trimap", "alpha"):
            given = getattr(spec, name)
            if given is not None and tuple(given.shape[-2:]) != (h, w):
                raise InputError(f"{name} is {given.shape[-1]}x{given.shape[-2]} but the image is {w}x{h}")
        if kind == "alpha":
            alpha = spec.alpha.reshape(1, h, w).float().clamp(0, 1)
            check_alpha(alpha, "alpha")
            return ForegroundResult(alpha=alpha, matting="given")
        result = ForegroundResult(alpha=torch.empty(0))
        if kind == "trimap":
            trimap = spec.trimap.reshape(1, h, w).float()
            trimap = torch.where(
                trimap < 0.25, 0.0, torch.where(trimap > 0.75, 1.0, 0.5)
            )  # snap 8-bit values
            check_trimap(trimap)
        else:
            mask = spec.mask
            if kind in ("text", "box"):
                if kind == "text":
                    result.box, result.score = self.detect_box(image, spec.text)
                else:
                    result.box = check_box(spec.box, h, w)
                mask = (
                    self.segmenter(image, result.box) if self.segmenter else grabcut_mask(image, result.box)
                )
                if not (mask > 0.5).any():  # degenerate segmentation: the box itself is the rough mask
                    log.warning("the segmentation of box %s is empty; using the box as the mask", result.box)
                    mask = box_mask(result.box, h, w)
            mask = (mask.reshape(1, h, w) > 0.5).float()
            if not mask.any():
                raise InputError(f"{kind}: the foreground mask is empty")
            result.mask = mask
            trimap, result.transparent_boxes = self.trimap_from_mask(image, mask)
        result.trimap = trimap
        result.alpha, result.matting = self.matte(image, trimap)
        check_alpha(result.alpha, f"{kind} foreground ({result.matting} matting)")
        return result


def sample_dir() -> Path:
    """The bundled sample photographs (``data/samples`` of the repository)."""
    return Path(__file__).resolve().parents[2] / "data" / "samples"
