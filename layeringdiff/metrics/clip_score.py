"""CLIP score (Table 1): 100 * max(cos(image, text), 0) per image, averaged.

The pure function works on embeddings; :class:`ClipEmbedder` is the open_clip extractor
(default ViT-L-14-quickgelu with OpenAI weights from a local file). torchmetrics' CLIPScore is
not used: it breaks with transformers 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from layeringdiff.weights import resolve_file


def clip_score_from_embeddings(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Per-pair CLIP score 100 * max(cos, 0) of (N, D) image and (N, D) text embeddings -> (N,)."""
    if image_emb.shape != text_emb.shape:
        raise ValueError(
            f"CLIP score: {tuple(image_emb.shape)} image vs {tuple(text_emb.shape)} text embeddings"
        )
    cos = torch.nn.functional.cosine_similarity(image_emb.double(), text_emb.double(), dim=-1)
    return 100 * cos.clamp(min=0)


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def openai_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights of an OpenAI CLIP TorchScript archive (e.g. ``ViT-L-14.pt``) in open_clip's names.

    OpenAI ships its CLIP weights as TorchScript; open_clip reads them with ``torch.load(...,
    weights_only=True)``, which refuses such archives; ``torch.jit.load`` reads them. The parameter
    names already match open_clip's ``CLIP`` (fp16 tensors are cast to float32).
    """
    state = torch.jit.load(str(path), map_location="cpu").state_dict()
    for key in ("input_resolution", "context_length", "vocab_size"):
        state.pop(key, None)
    return {k: v.float() for k, v in state.items()}


class ClipEmbedder(torch.nn.Module):
    """open_clip image and text embeddings, loaded offline.

    Args:
        model_name: open_clip architecture, e.g. ``ViT-L-14-quickgelu`` (the OpenAI ViT-L/14).
        pretrained: a weight file (OpenAI ``ViT-L-14.pt`` or an open_clip ``.safetensors``) for
            ``model_name``, or a ``local-dir`` folder holding ``open_clip_config.json`` plus weights
            (then ``model_name`` is ignored).
        batch_size: images/texts per forward.
        device: where the model runs (``cpu``, ``cuda``, ...); embeddings come back on the CPU.
    """

    def __init__(
        self,
        model_name: str = "ViT-L-14-quickgelu",
        pretrained: str = "",
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        import open_clip

        path = Path(pretrained).expanduser()
        if path.is_dir():
            resolve_file(path / "open_clip_config.json", "CLIP (open_clip local-dir)")
            model_id, kwargs = f"local-dir:{path}", {}
        else:
            resolve_file(
                path, f"CLIP {model_name}", "set the metric's clip.pretrained to the local weight file"
            )
            model_id, kwargs = model_name, {"pretrained": str(path)}
        openai_archive = path.is_file() and _is_torchscript(path)
        if openai_archive:  # open_clip's loader refuses TorchScript files (weights_only torch.load)
            kwargs = {}
        model, _, self.preprocess = open_clip.create_model_and_transforms(model_id, **kwargs)
        if openai_archive:
            model.load_state_dict(openai_state_dict(path), strict=True)
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.tokenizer = open_clip.get_tokenizer(model_id)
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, D) embeddings of RGB PIL images (composite RGBA over a matte first)."""
        out = []
        for i in range(0, len(images), self.batch_size):
            x = torch.stack([self.preprocess(im.convert("RGB")) for im in images[i : i + self.batch_size]])
            out.append(self.model.encode_image(x.to(self.device)).float().cpu())
        return torch.cat(out)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, D) embeddings of captions."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[i : i + self.batch_size])).to(self.device)
            out.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(out)

    def score(self, images: Sequence[Image.Image], texts: Sequence[str]) -> torch.Tensor:
        """Per-image CLIP score (N,) of images against their captions."""
        return clip_score_from_embeddings(self.embed_images(images), self.embed_texts(texts))
