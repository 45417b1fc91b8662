"""The three transformers models of foreground determination behind one wrapper: Grounding DINO
(text -> boxes), SAM (box -> mask) and ViTMatte (image + trimap -> alpha).

:class:`HFModel` holds what they share: loading weights from a folder or hub name (with one
message when they are missing), the device / dtype placement, optional CPU offload between calls,
and moving processor outputs onto the model.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
import torch

from layeringdiff.images import tensor_to_pil, tensor_to_uint8
from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.offload import on_device, placement
from layeringdiff.weights import resolve_pretrained

# Matte-Anything's Grounding DINO thresholds: the foreground query (also FG-MIoU's) and the
# transparency query. The one place these numbers live; configs override them only when they differ.
BOX_THRESHOLD, TEXT_THRESHOLD = 0.25, 0.25
TRANSPARENCY_BOX_THRESHOLD, TRANSPARENCY_TEXT_THRESHOLD = 0.5, 0.25


def detection_text(query: str) -> str:
    """Grounding DINO caption: lower-case phrases joined with ". " and ending in "."
    ("glass.lens" -> "glass. lens."; "A bird flying" -> "a bird flying.")."""
    phrases = [p.strip().lower() for p in query.split(".") if p.strip()]
    if not phrases:
        raise InputError(f"foreground text {query!r} is empty")
    return ". ".join(phrases) + "."


@dataclass
class Detections:
    """Boxes (N, 4) as pixel x0, y0, x1, y1, their scores (N,) sorted best first, and labels."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: list[str]
    best_score: float = 0.0  # the highest score of any query, kept, or not: for error messages


class HFModel(abc.ABC):
    """A transformers model and its processor on ``device`` (optionally offloaded between calls).

    Subclasses name the model for messages (``label``) and the transformers classes to load
    (``classes()``, imported lazily), and implement ``__call__``.
    """

    label = "model"

    def __init__(self, model, processor, device: str | torch.device = "cpu", offload: bool = False):
        self.model, self.processor, self.device = model.eval(), processor, torch.device(device)
        self.offload = offload

    @staticmethod
    @abc.abstractmethod
    def classes() -> tuple[type, type]:
        """(model class, processor class)."""

    @classmethod
    def from_pretrained(cls, name_or_path: str, device="cpu", dtype=torch.float32, offload: bool = False):
        path = resolve_pretrained(name_or_path, cls.label)
        model_cls, processor_cls = cls.classes()
        model = model_cls.from_pretrained(path, dtype=dtype).to(placement(device, offload))
        return cls(model, processor_cls.from_pretrained(path), device, offload)

    def to_model(self, inputs) -> dict:
        """Processor outputs onto the model's device; floating tensors in its dtype (bf16/fp16)."""
        dtype = self.model.dtype
        return {
            k: v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in inputs.items()
        }

    def run(self, **inputs):
        """The model's forward on its device (moved there and back when offloaded)."""
        with on_device(self.model, self.device, self.offload):
            return self.model(**inputs)


class GroundingDetector(HFModel):
    """Grounding DINO as a text-prompted box detector."""

    label = "Grounding DINO"

    @staticmethod
    def classes():
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        return GroundingDinoForObjectDetection, AutoProcessor

    @torch.no_grad()
    def __call__(
        self, image: torch.Tensor, text: str, box_threshold: float, text_threshold: float
    ) -> Detections:
        """Detect ``text`` in ``image`` (3, H, W); keep boxes scoring above ``box_threshold``."""
        h, w = image.shape[-2:]
        inputs = self.processor(images=tensor_to_pil(image), text=detection_text(text), return_tensors="pt")
        inputs = self.to_model(inputs)
        outputs = self.run(**inputs)
        best = float(torch.sigmoid(outputs.logits.float()).max()) if outputs.logits.numel() else 0.0
        result = self.processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=box_threshold,
            text_threshold=text_threshold,
            target_sizes=[(h, w)],
        )[0]
        order = torch.argsort(result["scores"].float().cpu(), descending=True)
        boxes = result["boxes"].float().cpu()[order]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        labels = [result["text_labels"][i] for i in order.tolist()]
        return Detections(boxes, result["scores"].float().cpu()[order], labels, best)


class SamSegmenter(HFModel):
    """SAM turning a box into a single binary mask."""

    label = "SAM"

    @staticmethod
    def classes():
        from transformers import SamModel, SamProcessor

        return SamModel, SamProcessor

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, box: list[float]) -> torch.Tensor:
        """Mask (1, H, W) in {0, 1} for ``box`` = [x0, y0, x1, y1] in pixels of ``image`` (3, H, W)."""
        inputs = self.processor(
            images=tensor_to_pil(image), input_boxes=[[list(map(float, box))]], return_tensors="pt"
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}  # boxes stay float32
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        outputs = self.run(**inputs, multimask_output=False)
        masks = self.processor.post_process_masks(
            outputs.pred_masks.float().cpu(),
            inputs["original_sizes"].cpu(),
            inputs["reshaped_input_sizes"].cpu(),
        )
        return masks[0][0, :1].float()


class VitMatteMatting(HFModel):
    """ViTMatte: image + trimap -> alpha."""

    label = "ViTMatte"

    @staticmethod
    def classes():
        from transformers import VitMatteForImageMatting, VitMatteImageProcessor

        return VitMatteForImageMatting, VitMatteImageProcessor

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
        """Alpha (1, H, W) for ``image`` (3, H, W) and ``trimap`` (1, H, W) in {0, 0.5, 1}."""
        h, w = image.shape[-2:]
        tri = tensor_to_uint8(trimap)[:, :, 0]
        tri = np.where(tri == 127, 128, tri).astype(np.uint8)  # 0.5 rounds to 128 or 127
        from PIL import Image

        inputs = self.processor(
            images=tensor_to_pil(image), trimaps=Image.fromarray(tri, "L"), return_tensors="pt"
        )
        alphas = self.run(pixel_values=self.to_model(inputs)["pixel_values"]).alphas
        return alphas[0, :, :h, :w].float().cpu().clamp(0, 1)  # the processor pads to a multiple of 32
