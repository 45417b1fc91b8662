"""FBA Matting as a layering member (``configs/layering/fba.yaml``, ``fba_inpaint.yaml``).

FBA Matting (Forte & Pitié 2020) predicts F and B itself, from the image and the trimap
(:mod:`layeringdiff.networks.fba_matting`). These are the paper's Table 4 baselines "FBA" (its F
and B as they are) and "FBA + Inp." (its B inpainted where the alpha is above ``hole_threshold``,
as ``germer_inpaint`` does for Germer et al., with the same ``configs/inpainter/`` member:
:mod:`layeringdiff.pipeline.inpainters`).

Which alpha defines the hole is ours to choose (the paper does not say): ``hole_alpha="given"``
(default) is the alpha every Table 4 row shares (``eval.matting``), so that ``fba_inpaint`` and
``germer_inpaint`` fill the same pixels; ``"fba"`` uses FBA's own alpha. Without a trimap (an
alpha given directly to ``infer.py``) the trimap is the alpha's definite pixels (0 and 1) with
everything else unknown.
"""

from __future__ import annotations

import os

import torch

from layeringdiff.compositing import trimap_from_alpha
from layeringdiff.errors import ConfigError
from layeringdiff.networks.fba_matting import FBAMatting
from layeringdiff.pipeline.inpainters import TeleaInpainter, build_inpainter

HOLE_ALPHAS = ("given", "fba")


class FBALayering:
    """F and B from FBA Matting, optionally with the hidden background inpainted.

    Args:
        matting: the loaded :class:`FBAMatting`.
        inpaint: fill B where the alpha is above ``hole_threshold`` (the "+ Inp." row).
        inpainter: ``inpainter(image, hole, generator) -> image``; ``None`` uses OpenCV Telea.
        hole_threshold: as in :class:`layeringdiff.pipeline.layering.ClassicalLayering`.
        hole_alpha: ``"given"`` (the alpha passed in) or ``"fba"`` (FBA's own alpha) for the hole.
        name: the member name (``fba``, ``fba_inpaint``).
    """

    name = "fba"

    def __init__(
        self,
        matting: FBAMatting,
        inpaint: bool = False,
        inpainter=None,
        hole_threshold: float = 0.95,
        hole_alpha: str = "given",
        name: str = "fba",
    ):
        if hole_alpha not in HOLE_ALPHAS:
            raise ConfigError(
                f"{name}.hole_alpha must be one of {', '.join(HOLE_ALPHAS)}, got {hole_alpha!r}"
            )
        self.matting, self.inpaint = matting, inpaint
        self.inpainter = inpainter if inpainter is not None else TeleaInpainter()
        self.hole_threshold, self.hole_alpha = hole_threshold, hole_alpha
        self.name = name

    @classmethod
    def from_pretrained(
        cls,
        weights: str | os.PathLike,
        device="cpu",
        dtype=torch.float32,
        offload: bool = False,
        inpainter=None,
        **kwargs,
    ) -> FBALayering:
        """Load the converted FBA folder ``weights`` (``data/convert_fba.py``); a missing one raises
        :class:`~layeringdiff.weights.MissingWeightsError` (one line) before any work.

        FBA runs in float32 whatever ``dtype`` (its group norms and weight standardisation were
        trained so); ``offload`` is not supported (ignored: the network is 139 MB). ``inpainter``
        is a ``configs/inpainter/`` node, built only when ``inpaint`` is on.
        """
        matting = FBAMatting.from_pretrained(weights, device)
        built = build_inpainter(inpainter, device) if kwargs.get("inpaint") else None
        return cls(matting, inpainter=built, **kwargs)

    def set_progress_bar(self, enabled: bool) -> None:
        pass

    def __call__(
        self,
        composite: torch.Tensor,
        alpha: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        trimap: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if trimap is None:
            trimap = trimap_from_alpha(alpha.float().cpu(), fg_kernel=1, eps=0.0)
        out = self.matting(composite, trimap)
        fg, bg = out["foreground"], out["background"]
        if self.inpaint:
            source = out["alpha"] if self.hole_alpha == "fba" else alpha.float().cpu()
            bg = self.inpainter(bg, source > self.hole_threshold, generator)
        return fg, bg
