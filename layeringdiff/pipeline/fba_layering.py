"""FBA Matting as a layering member (``configs/layering/fba.yaml``, ``fba_inpaint.yaml``).

FBA Matting (Forte & Pitié 2020) predicts F and B itself, from the image and the trimap
(:mod:`layeringdiff.networks.fba_matting`). These are the paper's Table 4 baselines "FBA" (its F
and B as they are) and "FBA + Inp." (its B inpainted where the alpha is above ``hole_threshold``,
as ``germer_inpaint`` does for Germer et al.; the same inpainters: OpenCV Telea, or SD2
inpainting when ``sd2_inpainting`` is set).

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
from layeringdiff.pipeline.baselines import SD2Inpainter, inpaint_opencv

HOLE_ALPHAS = ("given", "fba")


class FBALayering:
    """F and B from FBA Matting, optionally with the hidden background inpainted.

    Args:
        matting: the loaded :class:`FBAMatting`.
        inpaint: fill B where the alpha is above ``hole_threshold`` (the "+ Inp." row).
        inpainter: SD2 inpainting; ``None`` uses OpenCV Telea.
        hole_threshold, inpaint_radius: as in :class:`layeringdiff.pipeline.layering.ClassicalLayering`.
        hole_alpha: ``"given"`` (the alpha passed in) or ``"fba"`` (FBA's own alpha) for the hole.
        name: the member name (``fba``, ``fba_inpaint``).
    """

    name = "fba"

    def __init__(
        self,
        matting: FBAMatting,
        inpaint: bool = False,
        inpainter: SD2Inpainter | None = None,
        hole_threshold: float = 0.95,
        inpaint_radius: int = 5,
        hole_alpha: str = "given",
        name: str = "fba",
    ):
        if hole_alpha not in HOLE_ALPHAS:
            raise ConfigError(
                f"{name}.hole_alpha must be one of {', '.join(HOLE_ALPHAS)}, got {hole_alpha!r}"
            )
        self.matting, self.inpaint, self.inpainter = matting, inpaint, inpainter
        self.hole_threshold, self.inpaint_radius, self.hole_alpha = hole_threshold, inpaint_radius, hole_alpha
        self.name = name

    @classmethod
    def from_pretrained(
        cls,
        weights: str | os.PathLike,
        device="cpu",
        dtype=torch.float32,
        offload: bool = False,
        sd2_inpainting: str | None = None,
        inpaint_steps: int = 25,
        inpaint_prompt: str = "",
        **kwargs,
    ) -> FBALayering:
        """Load the converted FBA folder ``weights`` (``data/convert_fba.py``); a missing one raises
        :class:`~layeringdiff.weights.MissingWeightsError` (one line) before any work.

        FBA runs in float32 whatever ``dtype`` (its group norms and weight standardisation were
        trained so); ``offload`` is not supported (ignored: the network is 139 MB).
        """
        matting = FBAMatting.from_pretrained(weights, device)
        inpainter = None
        if sd2_inpainting and kwargs.get("inpaint"):
            inpainter = SD2Inpainter.from_pretrained(
                sd2_inpainting,
                device,
                torch.float32,
                prompt=inpaint_prompt,
                num_inference_steps=inpaint_steps,
            )
        return cls(matting, inpainter=inpainter, **kwargs)

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
            hole = source > self.hole_threshold
            if self.inpainter is not None:
                bg = self.inpainter(bg, hole, generator).float().cpu()
            else:
                bg = inpaint_opencv(bg, hole, self.inpaint_radius)
        return fg, bg
