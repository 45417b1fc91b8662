"""``LayeringDiffPipeline``: text (or a real image) -> composite -> foreground(s) -> layers.

Read ``run`` top to bottom: 1. check inputs, 2. generate the composite (skipped for a
real image), 3. for each foreground, top-most first: determine its alpha on the current
background and decompose (sequential peeling), 4. return the layers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from layeringdiff.compositing import composite_layers
from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.foreground import ForegroundDetermination, ForegroundResult, ForegroundSpec
from layeringdiff.pipeline.generate import CompositeGenerator, GenerationSettings
from layeringdiff.pipeline.layering import Layering
from layeringdiff.pipeline.request import LayerRequest, request_from_arguments

log = logging.getLogger(__name__)


@dataclass
class LayeringDiffPipelineOutput:
    """Layers of one decomposition, foregrounds top-most first.

    Attributes:
        composite: (3, H, W) the generated or given image.
        foregrounds: list of (3, H, W) foreground colours.
        alphas: list of (1, H, W) alphas (same order).
        background: (3, H, W) the bottom layer.
        trimaps: the trimap used for each foreground (``None`` when the alpha was given).
        foreground_prompts: T_F of each foreground (``None`` when not given as text).
        boxes, scores: the box (detected or given) and its detection score, per foreground.
        timings: seconds per stage (``generate``, ``foreground_1``, ``layering_1``, ...).
    """

    composite: torch.Tensor
    foregrounds: list[torch.Tensor]
    alphas: list[torch.Tensor]
    background: torch.Tensor
    trimaps: list[torch.Tensor | None] = field(default_factory=list)
    foreground_prompts: list[str | None] = field(default_factory=list)
    boxes: list[list[float] | None] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    matting: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def recomposite(self) -> torch.Tensor:
        """All layers composited back together (Eq. 1 applied from the bottom up)."""
        return composite_layers(self.background, self.foregrounds, self.alphas)


class LayeringDiffPipeline:
    """The full LayeringDiff inference pipeline.

    Args:
        foreground: the foreground determination stage.
        layering: any :class:`~layeringdiff.pipeline.layering.Layering` (a ``configs/layering/`` member).
        generator: the SDXL stage; ``None`` for real-image decomposition only.
    """

    def __init__(
        self,
        foreground: ForegroundDetermination,
        layering: Layering,
        generator: CompositeGenerator | None = None,
    ):
        self.foreground, self.layering, self.generator = foreground, layering, generator

    def check_inputs(
        self,
        prompt: str | None,
        foreground_indices: Sequence[Sequence[int]] | None,
        image: torch.Tensor | None,
        foregrounds: Sequence[ForegroundSpec] | None,
        height: int,
        width: int,
    ) -> list[ForegroundSpec]:
        """Validate the request and return one :class:`ForegroundSpec` per layer, top-most first."""
        request = request_from_arguments(prompt, foreground_indices, image, foregrounds)
        return self.check_request(request, height, width).foregrounds

    def check_request(self, request: LayerRequest, height: int, width: int) -> LayerRequest:
        """:meth:`LayerRequest.check` plus what this pipeline can do (text needs the generator)."""
        if request.text_mode and request.image is None and self.generator is None:
            raise InputError("a text prompt needs the SDXL generator (pipeline.generator.sdxl weights)")
        return request.check(height, width)

    def set_progress_bar(self, enabled: bool) -> None:
        self._progress = enabled
        for stage in (self.generator, self.layering):
            if hasattr(stage, "set_progress_bar"):
                stage.set_progress_bar(enabled)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | None = None,
        foreground_indices: Sequence[Sequence[int]] | None = None,
        image: torch.Tensor | None = None,
        foregrounds: Sequence[ForegroundSpec] | None = None,
        negative_prompt: str | None = None,
        height: int = 768,
        width: int = 768,
        num_inference_steps: int = 30,
        guidance_scale: float = 5.0,
        control_image: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> LayeringDiffPipelineOutput:
        """Make the layers of one image.

        Args:
            prompt: text prompt T (text mode); mutually exclusive with ``image``.
            foreground_indices: one list of word indices per foreground (top-most first).
            image: (3, H, W) real image in [0, 1] (real-image mode).
            foregrounds: explicit :class:`ForegroundSpec` per layer (overrides the indices).
            negative_prompt, height, width, num_inference_steps, guidance_scale: SDXL settings.
            control_image: (3, H, W) image for the ControlNet condition, if one is loaded.
            generator: seeds every sampler (SDXL, FBDD, SD2 inpainting).
        """
        request = request_from_arguments(
            prompt, foreground_indices, image, foregrounds, negative_prompt, control_image
        )
        settings = GenerationSettings(height, width, num_inference_steps, guidance_scale)
        return self.run(request, settings, generator)

    @torch.no_grad()
    def run(
        self,
        request: LayerRequest,
        settings: GenerationSettings | None = None,
        generator: torch.Generator | None = None,
    ) -> LayeringDiffPipelineOutput:
        """:meth:`__call__` on a :class:`LayerRequest` (checked here; cheap when already checked)."""
        settings = settings or GenerationSettings()
        # 1. Check inputs (cheap, before any model runs)
        request = self.check_request(request, settings.height, settings.width)
        progress = getattr(self, "_progress", False)
        stages = tqdm(
            total=request.text_mode + 2 * len(request.foregrounds),
            desc="stages",
            disable=not progress,
            leave=False,
        )
        timings: dict[str, float] = {}

        # 2. Generate the composite C_i (text mode) or take the real image
        if request.text_mode:
            stages.set_postfix_str("generate")
            start = time.perf_counter()
            composite = self.generator(
                request.prompt, request.negative_prompt, generator, request.control_image, **asdict(settings)
            )
            timings["generate"] = time.perf_counter() - start
            stages.update()
        else:
            composite = request.image.float().cpu().clamp(0, 1)

        # 3. Sequential peeling, 4. the layers, top-most first
        out = self._peel(composite, request.foregrounds, generator, stages, timings)
        stages.close()
        return out

    def _peel(
        self,
        composite: torch.Tensor,
        specs: Sequence[ForegroundSpec],
        generator: torch.Generator | None,
        stages: tqdm,
        timings: dict[str, float],
    ) -> LayeringDiffPipelineOutput:
        """Each foreground is determined on, and separated from, what is left below the one above."""
        out = LayeringDiffPipelineOutput(composite=composite, foregrounds=[], alphas=[], background=composite)
        current = composite
        for k, spec in enumerate(specs, start=1):
            stages.set_postfix_str(f"foreground {k}")
            start = time.perf_counter()
            fg: ForegroundResult = self.foreground(current, spec)
            timings[f"foreground_{k}"] = time.perf_counter() - start
            stages.update()
            stages.set_postfix_str(f"layering {k}")
            start = time.perf_counter()
            f_layer, current = self.layering(current, fg.alpha, generator, trimap=fg.trimap)
            timings[f"layering_{k}"] = time.perf_counter() - start
            stages.update()
            out.foregrounds.append(f_layer)
            out.alphas.append(fg.alpha)
            out.trimaps.append(fg.trimap)
            out.foreground_prompts.append(spec.text)
            out.boxes.append(fg.box)
            out.scores.append(fg.score)
            out.matting.append(fg.matting)
            log.info("layer %d: %s foreground, %s matting", k, spec.kind(), fg.matting)
        out.background = current
        out.timings = timings
        return out
