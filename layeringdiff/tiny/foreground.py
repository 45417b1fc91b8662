"""Tiny, randomly initialised foreground-determination models: Grounding DINO, SAM, ViTMatte.

Each folder has the real repo's layout (``config.json``, ``model.safetensors`` and the
processor files), so it loads with the same ``from_pretrained`` calls as
``IDEA-Research/grounding-dino-tiny``, ``facebook/sam-vit-base`` and
``hustvl/vitmatte-small-composition-1k``. Grounding DINO's BERT tokenizer is written offline
from a small generated ``vocab.txt`` (unknown words map to ``[UNK]``). Config constraints:
Grounding DINO needs ``decoder_layers >= 2``, ``d_model`` divisible by 32 (GroupNorm) and images
large enough that the 64x-downsampled level has more than one pixel (128 px here); SAM needs
``vision_config.num_pos_feats == prompt_encoder hidden_size // 2``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from layeringdiff.files import atomic_dir

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WORDS = (
    ".", ",", "a", "an", "the", "of", "at", "over", "bird", "flying", "sunset", "mountains", "cat", "dog",
    "person", "astronaut", "glass", "lens", "crystal", "diamond", "bubble", "bulb", "web", "grid",
)  # fmt: skip
IMAGE_SIZE = 128


def _publish(path: Path, write) -> Path:
    """Run ``write(tmp)`` in a sibling temp folder and rename it to ``path`` (idempotent)."""
    if (path / "config.json").is_file():
        return path
    if path.exists():
        raise FileExistsError(f"{path} exists but is not a complete tiny model folder; remove it to rebuild")
    try:
        with (
            atomic_dir(path) as tmp,
            torch.random.fork_rng(devices=[]),
        ):  # builders seed: keep the caller's RNG
            write(tmp)
    except OSError:  # another process finished first
        if not (path / "config.json").is_file():
            raise
    return path


def build_grounding_dino(path: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny ``GroundingDinoForObjectDetection`` + ``GroundingDinoProcessor`` (BERT tokenizer) folder."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    def write(tmp: Path) -> None:
        vocab = tmp / "vocab.txt"
        vocab.write_text("\n".join(SPECIAL + WORDS) + "\n")
        tokenizer = BertTokenizer(str(vocab), do_lower_case=True)
        backbone = SwinConfig(
            image_size=IMAGE_SIZE, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
            window_size=4, out_features=["stage2", "stage3", "stage4"],
        )  # fmt: skip
        text = BertConfig(
            vocab_size=len(SPECIAL + WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64,
        )  # fmt: skip
        config = GroundingDinoConfig(
            backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
            encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
            num_queries=10, max_text_len=32, encoder_n_points=2, decoder_n_points=2,
        )  # fmt: skip
        torch.manual_seed(seed)
        GroundingDinoForObjectDetection(config).save_pretrained(tmp)
        size = {"shortest_edge": IMAGE_SIZE, "longest_edge": IMAGE_SIZE}
        GroundingDinoProcessor(GroundingDinoImageProcessor(size=size), tokenizer).save_pretrained(tmp)

    return _publish(Path(path), write)


def build_sam(path: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny ``SamModel`` + ``SamProcessor`` folder (64 px input, 8 px patches)."""
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    def write(tmp: Path) -> None:
        vision = SamVisionConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=64,
            patch_size=8, output_channels=16, num_pos_feats=8, global_attn_indexes=[0], window_size=4, mlp_dim=32,
        )  # fmt: skip
        prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
        decoder = SamMaskDecoderConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16
        )
        torch.manual_seed(seed)
        SamModel(
            SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
        ).save_pretrained(tmp)
        processor = SamImageProcessor(
            size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
            mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16},
        )  # fmt: skip
        SamProcessor(image_processor=processor).save_pretrained(tmp)

    return _publish(Path(path), write)


def build_vitmatte(path: str | os.PathLike, seed: int = 0) -> Path:
    """Tiny ``VitMatteForImageMatting`` (VitDet backbone) + ``VitMatteImageProcessor`` folder."""
    from transformers import VitDetConfig, VitMatteConfig, VitMatteForImageMatting, VitMatteImageProcessor

    def write(tmp: Path) -> None:
        backbone = VitDetConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=64, patch_size=16,
            num_channels=4, out_features=["stage2"], pretrain_image_size=64,
        )  # fmt: skip
        config = VitMatteConfig(
            backbone_config=backbone,
            hidden_size=16,
            convstream_hidden_sizes=[8, 8, 16],
            fusion_hidden_sizes=[16, 8, 8, 8],
        )
        torch.manual_seed(seed)
        VitMatteForImageMatting(config).save_pretrained(tmp)
        VitMatteImageProcessor().save_pretrained(tmp)

    return _publish(Path(path), write)


def build(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write ``grounding_dino/``, ``sam/`` and ``vitmatte/`` under ``path`` (each idempotent)."""
    path = Path(path)
    build_grounding_dino(path / "grounding_dino", seed)
    build_sam(path / "sam", seed)
    build_vitmatte(path / "vitmatte", seed)
    return path
