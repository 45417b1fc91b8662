"""``LayeringDiffPipeline``: text (or a real image) -> composite -> foreground(s) -> layers.

Read ``__call__`` top to bottom: 1. check inputs, 2. generate the composite (skipped for a
real image), 3. for each foreground, top-most first: determine its alpha on the current
background and decompose (sequential peeling), 4. return the layers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from layeringdiff.compositing import composite_layers
from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.foreground import ForegroundDetermination, ForegroundResult, ForegroundSpec
from layeringdiff.pipeline.generate import CompositeGenerator
from layeringdiff.pipeline.layering import ClassicalLayering, LayeringDiffLayering
from layeringdiff.pipeline.prompt import foreground_prompt

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 16, 4096


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


def check_generation_size(height: int, width: int) -> None:
    """Text mode: ``height`` and ``width`` must be multiples of 8 in [MIN_SIZE, MAX_SIZE]."""
    for size, name in ((height, "height"), (width, "width")):
        if size % 8 or not MIN_SIZE <= size <= MAX_SIZE:
            raise InputError(f"{name}={size} must be a multiple of 8 in [{MIN_SIZE}, {MAX_SIZE}]")


def check_image_size(image: torch.Tensor, source: str = "image") -> None:
    """Real-image mode: each side in [MIN_SIZE, MAX_SIZE] (larger images are refused, not resized,
    so the layers always have the input's size)."""
    h, w = image.shape[-2:]
    if min(h, w) < MIN_SIZE or max(h, w) > MAX_SIZE:
        raise InputError(
            f"{source} is {w}x{h}; sizes from {MIN_SIZE} to {MAX_SIZE} pixels per side are supported "
            "(resize it first)"
        )


class LayeringDiffPipeline:
    """The full LayeringDiff inference pipeline.

    Args:
        foreground: the foreground determination stage.
        layering: ``ClassicalLayering`` or ``LayeringDiffLayering``.
        generator: the SDXL stage; ``None`` for real-image decomposition only.
    """

    def __init__(
        self,
        foreground: ForegroundDetermination,
        layering: ClassicalLayering | LayeringDiffLayering,
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
        if (prompt is None) == (image is None):
            raise InputError(
                "give either a text prompt (generate) or an image (decompose a real image), not both"
            )
        if prompt is not None:
            if self.generator is None:
                raise InputError("a text prompt needs the SDXL generator (pipeline.generator.sdxl weights)")
            if not prompt.strip():
                raise InputError("the prompt is empty")
            if foregrounds is None:
                if foreground_indices is None:
                    raise InputError("text mode needs foreground_indices, e.g. [0,1,2] or [[0,1],[5,6]]")
                foregrounds = [
                    ForegroundSpec(text=foreground_prompt(prompt, ix)) for ix in foreground_indices
                ]
            check_generation_size(height, width)
        else:
            if image.ndim != 3 or image.shape[0] != 3:
                raise InputError(f"image must be (3, H, W), got {tuple(image.shape)}")
            check_image_size(image)
        if not foregrounds:
            raise InputError("no foreground given: give foreground text, a box, a mask, a trimap or an alpha")
        for spec in foregrounds:
            spec.kind()
        return list(foregrounds)

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
        timings: dict[str, float] = {}
        progress = getattr(self, "_progress", False)

        # 1. Check inputs (cheap, before any model runs)
        specs = self.check_inputs(prompt, foreground_indices, image, foregrounds, height, width)

        stages = tqdm(
            total=(prompt is not None) + 2 * len(specs), desc="stages", disable=not progress, leave=False
        )

        # 2. Generate the composite C_i (text mode) or take the real image
        if prompt is not None:
            stages.set_postfix_str("generate")
            start = time.perf_counter()
            composite = self.generator(
                prompt,
                negative_prompt=negative_prompt,
                height=height,
                width=width,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=generator,
                control_image=control_image,
            )
            timings["generate"] = time.perf_counter() - start
            stages.update()
        else:
            composite = image.float().cpu().clamp(0, 1)

        # 3. Sequential peeling: each foreground is separated from what is left below the previous one
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
            f_layer, current = self.layering(current, fg.alpha, generator)
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

        stages.close()

        # 4. Return the layers, top-most first
        out.background = current
        out.timings = timings
        return out
