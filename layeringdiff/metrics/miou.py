"""FG-MIoU (Table 1): does a layer still (FG) / no longer (BG) show the foreground?

Definition used here, per sample with foreground prompt T_F and foreground alpha a:

1. Grounding DINO is queried with T_F on the layer image (the foreground layer composited over
   the matte colour, or the background layer); the highest-scoring box above the box/text
   thresholds (0.25/0.25) is kept;
2. SAM predicts a single mask from that box;
3. IoU(mask, a > 0.5). No detected box means an empty mask, i.e. IoU 0.

FG-MIoU is the mean IoU over samples x100. On the foreground layer higher is better (the object
is where the alpha says); on the background layer lower is better (the object must be gone).
Samples whose alpha is empty are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from layeringdiff.pipeline.hf_models import BOX_THRESHOLD, TEXT_THRESHOLD

Segmenter = Callable[[Image.Image, str], "np.ndarray | None"]
"""``segment(image, prompt) -> bool mask (H, W)`` of the prompted object, or ``None`` if not found."""


def mask_iou(pred: np.ndarray | torch.Tensor | None, target: np.ndarray | torch.Tensor) -> float | None:
    """IoU of two boolean masks (H, W); ``pred=None`` is an empty mask; ``None`` if ``target`` is empty."""
    t = np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target).astype(bool)
    if not t.any():
        return None
    if pred is None:
        return 0.0
    p = np.asarray(pred.cpu() if isinstance(pred, torch.Tensor) else pred).astype(bool)
    if p.shape != t.shape:
        raise ValueError(f"mask_iou: mask {p.shape} vs target {t.shape}")
    return float(np.logical_and(p, t).sum() / np.logical_or(p, t).sum())


def layer_iou(
    segment: Segmenter, layer: Image.Image, prompt: str, alpha: np.ndarray, threshold: float = 0.5
) -> float | None:
    """FG-MIoU term of one layer: ``mask_iou(segment(layer, prompt), alpha > threshold)``."""
    return mask_iou(segment(layer, prompt), np.asarray(alpha) > threshold)


class GroundedSam:
    """Grounding DINO box -> SAM mask, from the inference pipeline's own detector and segmenter.

    Args:
        detector: ``layeringdiff.pipeline.hf_models.GroundingDetector``.
        sam: ``layeringdiff.pipeline.hf_models.SamSegmenter``.
        box_threshold, text_threshold: Grounding DINO thresholds (0.25 / 0.25, as for the foreground).
    """

    def __init__(
        self, detector, sam, box_threshold: float = BOX_THRESHOLD, text_threshold: float = TEXT_THRESHOLD
    ) -> None:
        self.detector, self.sam = detector, sam
        self.box_threshold, self.text_threshold = box_threshold, text_threshold

    @classmethod
    def from_pretrained(
        cls,
        grounding_dino: str,
        sam: str,
        device: str = "cpu",
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
    ) -> GroundedSam:
        """Load both models from local folders / cached HF ids (``layeringdiff.weights``)."""
        from layeringdiff.pipeline.hf_models import GroundingDetector, SamSegmenter

        return cls(
            GroundingDetector.from_pretrained(grounding_dino, device=device),
            SamSegmenter.from_pretrained(sam, device=device),
            box_threshold,
            text_threshold,
        )

    def __call__(self, image: Image.Image, prompt: str) -> np.ndarray | None:
        from layeringdiff.images import pil_to_tensor

        x = pil_to_tensor(image.convert("RGB"))
        found = self.detector(x, prompt, self.box_threshold, self.text_threshold)
        if len(found.boxes) == 0:
            return None
        return self.sam(x, found.boxes[0].tolist())[0].numpy() > 0.5
