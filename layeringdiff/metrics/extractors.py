"""Build the metric networks from the evaluate config (``cfg.metrics``), offline.

With ``metrics.build_tiny=true`` (smoke runs and tests only) tiny random stand-ins are built
under ``metrics.tiny_dir`` and used instead; real configs never set it.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def _tiny_dir(cfg: DictConfig) -> Path | None:
    if not cfg.metrics.get("build_tiny"):
        return None
    from layeringdiff.tiny.metrics import build

    return build(cfg.metrics.tiny_dir, seed=0)


def inception(cfg: DictConfig):
    """The FID/KID feature network: clean-fid's Inception file from ``metrics.inception_path``."""
    from layeringdiff.metrics.fid import InceptionFeatures

    tiny = _tiny_dir(cfg)
    path = tiny / "inception.pt" if tiny else cfg.metrics.inception_path
    return InceptionFeatures(path, device=cfg.get("device") or "cpu")


def clip(cfg: DictConfig):
    """The CLIP-score embedder (open_clip) from ``metrics.clip``."""
    from layeringdiff.metrics.clip_score import ClipEmbedder

    tiny, device = _tiny_dir(cfg), cfg.get("device") or "cpu"
    if tiny:
        return ClipEmbedder(pretrained=str(tiny / "clip"), device=device)
    return ClipEmbedder(
        model_name=cfg.metrics.clip.model_name, pretrained=str(cfg.metrics.clip.pretrained), device=device
    )


def lpips(cfg: DictConfig):
    """LPIPS (AlexNet) from ``metrics.lpips``; tiny runs use the random trunk."""
    from layeringdiff.metrics.lpips_metric import LPIPSMetric

    opts = cfg.metrics.lpips
    allow_random = bool(opts.get("allow_random_backbone")) or bool(cfg.metrics.get("build_tiny"))
    return LPIPSMetric(
        alexnet_weights=opts.get("alexnet_weights"),
        allow_random_backbone=allow_random,
        precision=opts.get("precision", "fp32"),
    )
