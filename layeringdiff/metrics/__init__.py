"""Metrics: feature extractors separate from pure functions on tensors / features.

Pure functions (cheap, tested on constructed inputs): :func:`layer_errors` (MAD/MSE/SAD),
:func:`~layeringdiff.metrics.fid.frechet_distance`, :func:`~layeringdiff.metrics.fid.kernel_inception_distance`,
:func:`~layeringdiff.metrics.clip_score.clip_score_from_embeddings`,
:func:`~layeringdiff.metrics.miou.mask_iou`, :func:`~layeringdiff.metrics.placement.placement_stats`.
Extractors (networks, loaded offline): ``fid.InceptionFeatures``, ``clip_score.ClipEmbedder``,
``lpips_metric.LPIPSMetric``, the Grounding DINO + SAM segmenter in ``segmenter``.
"""

from layeringdiff.metrics.layer_errors import layer_errors, layer_errors_batch

__all__ = ["layer_errors", "layer_errors_batch"]
