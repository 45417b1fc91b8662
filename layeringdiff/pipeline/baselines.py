"""Classical layering: Germer et al. foreground/background estimation and background inpainting.

Germer et al., "Fast Multi-Level Foreground Estimation" (ICPR 2020) -- pymatting's reference
implementation -- estimates both F and B from the composite and the alpha. Where the alpha is
(nearly) 1 the background was never seen, so it is inpainted: the inpainters that do it (Telea,
FSR, Stable Diffusion 2 inpainting) are chosen in :mod:`layeringdiff.pipeline.inpainters`.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from layeringdiff.images import tensor_to_pil, tensor_to_uint8
from layeringdiff.weights import resolve_pretrained


def germer_foreground_background(
    image: torch.Tensor, alpha: torch.Tensor, numba_threads: int | None = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-level foreground and background estimation (Germer et al.) via pymatting.

    Args:
        image: composite (3, H, W) in [0, 1].
        alpha: (1, H, W) in [0, 1].
        numba_threads: numba threads for the call (``None``: numba's setting, one per core).

    Returns:
        (foreground, background), each (3, H, W) float32 in [0, 1].
    """
    import numba
    from pymatting import estimate_foreground_ml

    img = image.permute(1, 2, 0).double().cpu().numpy()
    a = alpha[0].double().cpu().numpy()
    # pymatting's only parallel parts are its nearest-neighbour resizes between levels: a second
    # numba thread there costs more CPU time (2-3x the whole call, spin-waiting) than it saves.
    # The estimate itself is sequential, so the result does not depend on the thread count.
    threads = numba.get_num_threads()
    numba.set_num_threads(numba_threads or threads)
    try:
        fg, bg = estimate_foreground_ml(img, a, return_background=True)
    finally:
        numba.set_num_threads(threads)

    def to_tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.clip(x, 0, 1)).float().permute(2, 0, 1).contiguous()

    return to_tensor(fg), to_tensor(bg)


def inpaint_opencv(image: torch.Tensor, hole: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """Fill ``hole`` (1, H, W) bool of ``image`` (3, H, W) with OpenCV's Telea inpainting."""
    if not bool(hole.any()):
        return image.clone()
    rgb = np.ascontiguousarray(tensor_to_uint8(image))
    out = cv2.inpaint(rgb, hole[0].cpu().numpy().astype(np.uint8), radius, cv2.INPAINT_TELEA)
    filled = torch.from_numpy(out).permute(2, 0, 1).float() / 255.0
    return torch.where(hole, filled, image)


class SD2Inpainter:
    """Stable Diffusion 2 inpainting (diffusers) for the hidden background.

    Args:
        pipe: a ``StableDiffusionInpaintPipeline``.
        prompt: text for the hole ("" = unconditional; e.g. "background" also works).
        num_inference_steps, guidance_scale: sampler settings.
    """

    def __init__(self, pipe, prompt: str = "", num_inference_steps: int = 25, guidance_scale: float = 7.5):
        self.pipe, self.prompt = pipe, prompt
        self.num_inference_steps, self.guidance_scale = num_inference_steps, guidance_scale

    @classmethod
    def from_pretrained(cls, name_or_path: str, device="cpu", dtype=torch.float32, **kwargs) -> SD2Inpainter:
        import diffusers
        from diffusers import AutoencoderKL, StableDiffusionInpaintPipeline, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        path = resolve_pretrained(name_or_path, "SD2 inpainting", subfolder="unet")
        # Component by component: works for any folder with the repo layout, model_index.json or not.
        scheduler_name = json.loads((path / "scheduler" / "scheduler_config.json").read_text())["_class_name"]
        pipe = StableDiffusionInpaintPipeline(
            vae=AutoencoderKL.from_pretrained(path, subfolder="vae", dtype=dtype),
            text_encoder=CLIPTextModel.from_pretrained(path, subfolder="text_encoder", dtype=dtype),
            tokenizer=CLIPTokenizer.from_pretrained(path, subfolder="tokenizer"),
            unet=UNet2DConditionModel.from_pretrained(path, subfolder="unet", dtype=dtype),
            scheduler=getattr(diffusers, scheduler_name).from_pretrained(path, subfolder="scheduler"),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(leave=False)
        return cls(pipe.to(device), **kwargs)

    def __call__(
        self, image: torch.Tensor, hole: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        h, w = image.shape[-2:]
        sh, sw = max(8, h // 8 * 8), max(8, w // 8 * 8)  # the VAE needs multiples of 8
        out = self.pipe(
            prompt=self.prompt,
            image=tensor_to_pil(image),
            mask_image=tensor_to_pil(hole.float()),
            height=sh,
            width=sw,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
            output_type="pt",
        ).images[0]
        out = torch.nn.functional.interpolate(out[None].float().cpu(), size=(h, w), mode="bilinear")[0]
        return torch.where(hole, out.clamp(0, 1), image)
