"""The decomposition methods compared in Table 4, assembled from the inference stages.

Every method is a callable ``method(composite (3, H, W), trimap (1, H, W), generator) ->
{"foreground", "background", "alpha"}`` built by Hydra from ``configs/eval/table4.yaml``. The
pieces are the inference pipeline's own (``layeringdiff.pipeline``): matting (ViTMatte, or
closed-form matting offline), Germer et al. estimation, OpenCV/SD2 inpainting and the
LayeringDiff FBDD + HFA backend. Nothing is re-implemented here.

FBA Matting is not bundled: a user with its code and weights plugs it in as a ``matting``
callable (``image, trimap -> alpha``), or as a whole method (a ``_target_`` returning the dict).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Matting = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Layering = Callable[..., tuple[torch.Tensor, torch.Tensor]]


class GermerLayering:
    """Germer et al. multi-level estimation of F and B alone (no inpainting): the paper's baseline row."""

    name = "germer"

    def __call__(
        self, composite: torch.Tensor, alpha: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from layeringdiff.pipeline.baselines import germer_foreground_background

        return germer_foreground_background(composite, alpha)


class MattingThenLayering:
    """trimap -> alpha (a matting method) -> (F, B) (a layering backend).

    Args:
        layering: ``backend(composite, alpha, generator) -> (F, B)``, e.g.
            ``layeringdiff.pipeline.layering.LayeringDiffLayering`` or ``ClassicalLayering``.
        matting: ``matting(image, trimap) -> alpha``, e.g. ``VitMatteMatting`` or
            ``closed_form_matting``; ``None`` uses the ground-truth alpha (an oracle, for analysis).
    """

    def __init__(self, layering: Layering, matting: Matting | None = None) -> None:
        self.layering, self.matting = layering, matting

    def __call__(
        self,
        composite: torch.Tensor,
        trimap: torch.Tensor,
        generator: torch.Generator | None = None,
        alpha: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if self.matting is not None:
            alpha = self.matting(composite, trimap)
        elif alpha is None:
            raise ValueError("MattingThenLayering without matting needs the ground-truth alpha")
        fg, bg = self.layering(composite, alpha, generator)
        return {"foreground": fg, "background": bg, "alpha": alpha}


class CompositeCopy:
    """The trivial lower bound: both layers are the composite itself (a sanity row, and for tests)."""

    name = "composite_copy"

    def __call__(
        self, composite: torch.Tensor, alpha: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return composite.clone(), composite.clone()
