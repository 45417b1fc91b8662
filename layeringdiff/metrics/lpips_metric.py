"""LPIPS (AlexNet) for Table 4, loaded offline.

``lpips`` would fetch torchvision's ImageNet AlexNet on first use; here the trunk is built
random (``pnet_rand=True``) and its weights are filled from a local file resolved through
:mod:`layeringdiff.weights`. The calibrated linear heads ship inside the ``lpips`` package.
Without the AlexNet file the metric fails with a clear message, unless
``allow_random_backbone=True`` (tests, smoke runs, speed benchmarks), which keeps the random
trunk and is not the published metric.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from layeringdiff.errors import ConfigError
from layeringdiff.metrics.layer_errors import LPIPS_SCALE
from layeringdiff.weights import MissingWeightsError, resolve_file

log = logging.getLogger(__name__)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def default_alexnet_path() -> Path:
    """Where torchvision keeps the ImageNet AlexNet weights ($TORCH_HOME/hub/checkpoints)."""
    torch_home = os.environ.get("TORCH_HOME", os.path.join(os.path.expanduser("~"), ".cache", "torch"))
    return Path(torch_home) / "hub" / "checkpoints" / ALEXNET_FILE


class LPIPSMetric(torch.nn.Module):
    """Per-image LPIPS x1e2 between two batches of images in [0, 1].

    Args:
        alexnet_weights: torchvision AlexNet state-dict file; ``None`` looks in $TORCH_HOME.
        allow_random_backbone: use a random trunk when the file is missing (not the real metric).
        batch_size: images per forward pass.
        precision: ``fp32`` (default, the metric) or ``bf16`` (AlexNet trunk under bfloat16 autocast:
            about twice as fast on CPUs with AVX512-BF16, LPIPS within about 1% relative).
    """

    def __init__(
        self,
        alexnet_weights: str | None = None,
        allow_random_backbone: bool = False,
        batch_size: int = 8,
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"LPIPS precision must be fp32 or bf16, got {precision!r}")
        self.precision = precision
        import lpips

        self.net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
        self.batch_size = batch_size
        self.random_backbone = False
        path = Path(alexnet_weights) if alexnet_weights else default_alexnet_path()
        try:
            path = resolve_file(
                path,
                "LPIPS AlexNet trunk",
                hint=f"copy torchvision's {ALEXNET_FILE} there or set the alexnet_weights option",
            )
        except MissingWeightsError:
            if not allow_random_backbone:
                raise
            log.warning("LPIPS: %s missing, using a RANDOM AlexNet trunk (numbers are not comparable)", path)
            self.random_backbone = True
        else:
            self._load_trunk(path)
        self.requires_grad_(False)
        # NHWC convolutions are about 2x faster on CPU for AlexNet at 512x512 (same values to ~1e-6).
        self.net.net.to(memory_format=torch.channels_last)

    def _load_trunk(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        trunk = self.net.net
        for k in range(1, trunk.N_slices + 1):
            part = getattr(trunk, f"slice{k}")
            sub = {f"{name}": state[f"features.{name}"] for name in part.state_dict()}
            part.load_state_dict(sub)

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised AlexNet feature maps of (B, 3, H, W) images in [0, 1].

        Computing the ground truth's features once and reusing them for every method halves the cost.
        """
        out: list[list[torch.Tensor]] = []
        for i in range(0, images.shape[0], self.batch_size):
            x = self.net.scaling_layer(images[i : i + self.batch_size].float() * 2 - 1)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                levels = [f.float() for f in self.net.net(x)]
            out.append([f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10) for f in levels])
        return [torch.cat(level) for level in zip(*out)]

    @torch.inference_mode()
    def distance(
        self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """LPIPS x1e2 (B,) float64 from two :meth:`features` results: sum over levels of the linear
        head applied to the spatial mean of the squared feature difference.

        Args:
            mask: optional (B, 1, H, W) region weights at image resolution; each level's spatial
                mean becomes the mean weighted by the mask area-resized to that level (all ones gives
                the plain value). An image whose region is empty gets NaN.
        """
        total = 0.0
        for level, (a, b) in enumerate(zip(feats_a, feats_b)):
            weight = getattr(self.net, f"lin{level}").model[-1].weight.flatten()  # 1x1 conv, no bias
            sq = (a - b).square()
            if mask is None:
                per_channel = sq.mean((2, 3))
            else:
                m = torch.nn.functional.interpolate(mask.to(sq), size=sq.shape[-2:], mode="area")
                per_channel = (sq * m).sum((2, 3)) / m.sum((2, 3))
            total = total + (per_channel * weight).sum(1).double()
        return total * LPIPS_SCALE

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """LPIPS x1e2 per image of (B, 3, H, W) tensors in [0, 1], optionally over a region
        ``mask`` (B, 1, H, W); returns (B,) float64."""
        return self.distance(self.features(pred), self.features(target), mask)
