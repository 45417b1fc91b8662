"""Stage 1, generate: the initial composite C_i from text with SDXL (optionally ControlNet).

Any off-the-shelf text-to-image model works; the paper uses SDXL. A ControlNet adds a canny
edge or a depth condition: ``control="canny"`` takes any image and extracts its edges,
``control="depth"`` takes a depth map image as is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from layeringdiff.images import tensor_to_uint8
from layeringdiff.pipeline.errors import InputError
from layeringdiff.weights import resolve_pretrained

CONTROLS = ("canny", "depth")


@dataclass(frozen=True)
class GenerationSettings:
    """SDXL sampler settings of one composite (height and width: multiples of 8)."""

    height: int = 768
    width: int = 768
    num_inference_steps: int = 30
    guidance_scale: float = 5.0

    def __post_init__(self) -> None:
        """Refuse values that would crash later or pass silently (NaN guidance turns it off)."""
        import math

        from layeringdiff.pipeline.request import check_generation_size, whole_number

        height, width = check_generation_size(self.height, self.width)
        steps = whole_number("num_inference_steps", self.num_inference_steps, 1, 1000)
        try:
            scale = float(self.guidance_scale)
        except (TypeError, ValueError):
            scale = math.nan
        if isinstance(self.guidance_scale, bool) or not (math.isfinite(scale) and 0 <= scale <= 100):
            raise InputError(f"guidance_scale must be a number from 0 to 100, got {self.guidance_scale!r}")
        for name, value in (("height", height), ("width", width), ("num_inference_steps", steps)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "guidance_scale", scale)


def canny_control(image: torch.Tensor, low: int = 100, high: int = 200) -> Image.Image:
    """Canny edges of ``image`` (3, H, W) as the 3-channel control image ControlNet expects."""
    gray = cv2.cvtColor(np.ascontiguousarray(tensor_to_uint8(image)), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


def depth_control(image: torch.Tensor) -> Image.Image:
    """A depth map image (any channels, near = bright) as the 3-channel control image."""
    gray = tensor_to_uint8(image).mean(axis=-1).round().astype(np.uint8)
    return Image.fromarray(np.stack([gray] * 3, axis=-1))


class CompositeGenerator:
    """SDXL (``StableDiffusionXLPipeline`` or its ControlNet variant) producing C_i.

    Args:
        pipe: the diffusers pipeline.
        control: ``None``, ``"canny"`` or ``"depth"`` (the ControlNet's condition).
        controlnet_conditioning_scale: ControlNet strength.
    """

    def __init__(self, pipe, control: str | None = None, controlnet_conditioning_scale: float = 0.5):
        if control is not None and control not in CONTROLS:
            raise InputError(f"control must be one of {CONTROLS} or null, got {control!r}")
        self.pipe, self.control, self.controlnet_conditioning_scale = (
            pipe,
            control,
            controlnet_conditioning_scale,
        )

    @classmethod
    def from_pretrained(
        cls,
        sdxl: str,
        controlnet: str | None = None,
        control: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        offload: bool = False,
        **kwargs,
    ) -> CompositeGenerator:
        """Load SDXL from a local folder / cached HF id (and a ControlNet folder when given).

        Args:
            offload: ``enable_model_cpu_offload`` (each sub-model on the GPU only while it runs).
        """
        from diffusers import StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline

        path = resolve_pretrained(sdxl, "SDXL", subfolder="unet")
        if controlnet:
            from diffusers import ControlNetModel

            if control is None:
                raise InputError("a ControlNet needs control=canny or control=depth")
            cn = ControlNetModel.from_pretrained(resolve_pretrained(controlnet, "ControlNet"), dtype=dtype)
            pipe = StableDiffusionXLControlNetPipeline.from_pretrained(path, controlnet=cn, dtype=dtype)
        else:
            control = None
            pipe = StableDiffusionXLPipeline.from_pretrained(path, dtype=dtype)
        if offload and torch.device(device).type == "cuda":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe = pipe.to(device)
        return cls(pipe, control=control, **kwargs)

    def set_progress_bar(self, enabled: bool) -> None:
        self.pipe.set_progress_bar_config(disable=not enabled, leave=False, desc="SDXL")

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        negative_prompt: str | None = None,
        generator: torch.Generator | None = None,
        control_image: torch.Tensor | None = None,
        **settings,
    ) -> torch.Tensor:
        """Generate one composite (3, height, width) in [0, 1]; ``settings``: the fields of
        :class:`GenerationSettings` (height, width, num_inference_steps, guidance_scale)."""
        settings = asdict(GenerationSettings(**settings))
        height, width = settings["height"], settings["width"]
        kwargs = {}
        if self.control is not None:
            if control_image is None:
                raise InputError(f"the {self.control} ControlNet needs a control image (control_image=PATH)")
            img = control_image.float().cpu()
            img = torch.nn.functional.interpolate(img[None], size=(height, width), mode="bilinear")[0]
            kwargs["image"] = canny_control(img) if self.control == "canny" else depth_control(img)
            kwargs["controlnet_conditioning_scale"] = self.controlnet_conditioning_scale
        out = self.pipe(
            prompt=prompt,
            negative_prompt=negative_prompt,
            generator=generator,
            output_type="pt",
            **settings,
            **kwargs,
        )
        return out.images[0].float().cpu().clamp(0, 1)
