"""The decomposition methods compared in Table 4: a matting step, then a layering member.

A Table 4 method turns ``(composite (3, H, W), trimap (1, H, W), generator)`` into
``{"foreground", "background", "alpha"}``: the trimap first becomes an alpha (``eval.matting``:
ViTMatte, closed-form matting offline, or the ground-truth alpha when ``null``), then a member of
the ``configs/layering/`` group (:class:`layeringdiff.pipeline.layering.Layering`) makes F and B.
The pieces are the inference pipeline's own; nothing is re-implemented here.

FBA Matting's rows (``fba``, ``fba_inpaint``) are layering members that read the ``trimap``
(:class:`layeringdiff.pipeline.fba_layering.FBALayering`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from layeringdiff.pipeline.layering import Layering

Matting = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class MattingThenLayering:
    """trimap -> alpha (a matting method) -> (F, B) (a layering member).

    Args:
        layering: a :class:`~layeringdiff.pipeline.layering.Layering`, e.g. ``LayeringDiffLayering``.
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
        fg, bg = self.layering(composite, alpha, generator, trimap=trimap)
        return {"foreground": fg, "background": bg, "alpha": alpha}
