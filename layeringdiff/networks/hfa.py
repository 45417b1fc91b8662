"""HFA: the foreground / background alignment networks (FAN / BAN) that refine FBDD's layers.

``HFANet(C, alpha, L_hat) -> L`` is a plain convolutional UNet trained from scratch, input the
composite (3) + alpha (1) + FBDD layer (3). With ``residual=True`` (our default; the paper does
not say) it predicts a correction added to the FBDD layer, its last convolution starting at zero
so that an untrained net returns the FBDD layer unchanged. :func:`refine` runs the net and then
copies the composite through where it is known exactly (:func:`copy_through`).

Also here: :func:`degrade_like_fbdd`, the development stand-in for FBDD outputs (``degrade``
input mode), which is NOT the paper's setting (the paper trains on real FBDD outputs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from layeringdiff.networks import TRAINED_LAYERS

# F := C where alpha >= 1 - COPY_THRESHOLD, B := C where alpha <= COPY_THRESHOLD. Half an 8-bit step:
# for 8-bit mattes exactly alpha == 255 / alpha == 0; float mattes within 0.002 of 1 / 0 count too.
COPY_THRESHOLD = 0.5 / 255


def normalize_layer(layer: str) -> str:
    """``"fan"``/``"foreground"`` -> ``"foreground"``, ``"ban"``/``"background"`` -> ``"background"``."""
    name = {"fan": "foreground", "ban": "background"}.get(str(layer).lower(), str(layer).lower())
    if name not in TRAINED_LAYERS:
        raise ValueError(f"layer must be foreground|background (or fan|ban), got {layer!r}")
    return name


def _conv_stack(in_ch: int, out_ch: int, layers: int, groups: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [
            nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1),
            nn.GroupNorm(groups, out_ch),
            nn.SiLU(),
        ]
    return nn.Sequential(*mods)


class HFANet(ModelMixin, ConfigMixin):
    """FAN or BAN: a plain convolutional UNet, randomly initialised.

    Args:
        layer: "foreground" (FAN) or "background" (BAN); stored so exports know what they are.
        in_channels: composite 3 + alpha 1 + FBDD layer 3.
        out_channels: refined layer (3).
        block_out_channels: channels per resolution; depth = len(...), each step halves H and W.
        layers_per_block: conv + GroupNorm + SiLU units per block.
        norm_num_groups: GroupNorm groups (must divide every channel count).
        residual: predict a correction to the FBDD layer (zero-initialised output conv) instead
            of the layer itself.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        layer: str = "foreground",
        in_channels: int = 7,
        out_channels: int = 3,
        block_out_channels: Sequence[int] = (64, 128, 256, 512),
        layers_per_block: int = 2,
        norm_num_groups: int = 32,
        residual: bool = True,
    ) -> None:
        super().__init__()
        normalize_layer(layer)
        chs = [int(c) for c in block_out_channels]
        if not chs or any(c % norm_num_groups for c in chs):
            raise ValueError(
                f"block_out_channels {chs} must be non-empty multiples of norm_num_groups={norm_num_groups}"
            )
        g, n = norm_num_groups, layers_per_block
        self.conv_in = nn.Conv2d(in_channels, chs[0], 3, padding=1)
        self.encoders = nn.ModuleList([_conv_stack(c, c, n, g) for c in chs])
        self.downs = nn.ModuleList([nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(chs, chs[1:])])
        self.ups = nn.ModuleList([nn.Conv2d(b, a, 3, padding=1) for a, b in zip(chs, chs[1:])])
        self.decoders = nn.ModuleList([_conv_stack(2 * c, c, n, g) for c in chs[:-1]])
        self.conv_out = nn.Conv2d(chs[0], out_channels, 3, padding=1)
        if residual:
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)

    @property
    def size_multiple(self) -> int:
        """Inputs are padded (replicate) to a multiple of this and the output cropped back."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    def forward(self, composite: torch.Tensor, alpha: torch.Tensor, fbdd_layer: torch.Tensor) -> torch.Tensor:
        """Refined layer (B, 3, H, W), not clamped and without the copy-through (see :func:`refine`).

        Args:
            composite: (B, 3, H, W) in [0, 1].
            alpha: (B, 1, H, W) in [0, 1].
            fbdd_layer: (B, 3, H, W) in [0, 1], FBDD's F_hat (FAN) or B_hat (BAN).
        """
        check_inputs(composite, alpha, fbdd_layer)
        h, w = composite.shape[-2:]
        m = self.size_multiple
        x = torch.cat([composite, alpha, fbdd_layer], dim=1) * 2 - 1
        pad = (0, (-w) % m, 0, (-h) % m)
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        x = self.conv_in(x)
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x)
            if i < len(self.downs):
                skips.append(x)
                x = self.downs[i](x)
        for i in reversed(range(len(self.decoders))):
            x = self.ups[i](F.interpolate(x, scale_factor=2.0, mode="nearest"))
            x = self.decoders[i](torch.cat([x, skips[i]], dim=1))
        out = self.conv_out(x)[..., :h, :w]
        return fbdd_layer + out if self.config.residual else (out + 1) / 2


def check_inputs(composite: torch.Tensor, alpha: torch.Tensor, fbdd_layer: torch.Tensor) -> None:
    """One-line ValueError for wrong shapes."""
    if composite.ndim != 4 or composite.shape[1] != 3:
        raise ValueError(f"HFA: composite must be (B, 3, H, W), got {tuple(composite.shape)}")
    b, _, h, w = composite.shape
    if tuple(alpha.shape) != (b, 1, h, w):
        raise ValueError(f"HFA: alpha must be {(b, 1, h, w)}, got {tuple(alpha.shape)}")
    if tuple(fbdd_layer.shape) != (b, 3, h, w):
        raise ValueError(f"HFA: fbdd_layer must be {(b, 3, h, w)}, got {tuple(fbdd_layer.shape)}")


def copy_through(
    layer_pred: torch.Tensor,
    composite: torch.Tensor,
    alpha: torch.Tensor,
    layer: str,
    threshold: float = COPY_THRESHOLD,
) -> torch.Tensor:
    """Exact copy of the composite where a layer is known: F := C where alpha >= 1 - threshold
    (foreground), B := C where alpha <= threshold (background); elsewhere ``layer_pred``.

    Args:
        layer_pred: (B, 3, H, W) refined layer.
        composite: (B, 3, H, W).
        alpha: (B, 1, H, W).
        layer: "foreground"/"fan" or "background"/"ban".
        threshold: distance from 1 (foreground) or 0 (background) that still counts as exact;
            default half an 8-bit step, :data:`COPY_THRESHOLD`.
    """
    known = alpha >= 1 - threshold if normalize_layer(layer) == "foreground" else alpha <= threshold
    return torch.where(known, composite, layer_pred)


@torch.no_grad()
def refine(
    net: HFANet,
    composite: torch.Tensor,
    alpha: torch.Tensor,
    fbdd_layer: torch.Tensor,
    layer: str | None = None,
    threshold: float = COPY_THRESHOLD,
) -> torch.Tensor:
    """HFA at inference: run FAN/BAN, clamp to [0, 1], copy the composite through (no grad).

    Args:
        net: the FAN (foreground) or BAN (background) :class:`HFANet`.
        composite: (B, 3, H, W) in [0, 1].
        alpha: (B, 1, H, W) in [0, 1].
        fbdd_layer: FBDD's layer for the same images, (B, 3, H, W) in [0, 1].
        layer: "foreground"|"background" (or "fan"|"ban"); ``None`` takes ``net.config.layer``.
            Must agree with the net's own layer.
        threshold: see :func:`copy_through`.

    Returns:
        The refined layer, (B, 3, H, W) in [0, 1].
    """
    layer = normalize_layer(layer or net.config.layer)
    if layer != normalize_layer(net.config.layer):
        raise ValueError(f"refine: asked for the {layer} layer but the net is trained for {net.config.layer}")
    dtype = next(net.parameters()).dtype
    out = net(*(t.to(net.device, dtype) for t in (composite, alpha, fbdd_layer)))
    # copy from the caller's composite (not a low-precision cast of it): the copy stays exact
    composite, alpha = composite.to(net.device), alpha.to(net.device)
    return copy_through(out.to(composite.dtype).clamp(0, 1), composite, alpha, layer, threshold)


def degrade_like_fbdd(
    layer: torch.Tensor, alpha: torch.Tensor, which: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Development stand-in for an FBDD output: a degraded copy of the ground-truth layer.

    NOT the paper's setting (HFA is trained on real FBDD outputs, see data/cache_fbdd_outputs.py);
    it imitates their typical flaws so the HFA code can be developed and tested without trained
    FBDD models: Gaussian blur (sigma 0.5-1.5 px), a per-channel colour shift (gain 0.92-1.08,
    offset +-0.04), Gaussian noise (std 0.005-0.02), and for the background, where it is occluded
    (weight alpha), hallucinated texture: a heavily blurred copy plus smooth random colour blobs
    and fine noise, as an inpainting model would invent.

    Args:
        layer: ground-truth layer (B, 3, H, W) in [0, 1].
        alpha: (B, 1, H, W) in [0, 1].
        which: "foreground"/"fan" or "background"/"ban".
        generator: CPU generator for the random draws (same generator state -> same output).

    Returns:
        (B, 3, H, W) in [0, 1], on ``layer``'s device.
    """
    which = normalize_layer(which)
    b, _, h, w = layer.shape

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(layer)

    from torchvision.transforms.functional import gaussian_blur

    sigmas = (0.5 + rand(b)).tolist()
    out = torch.stack(
        [
            gaussian_blur(x, 2 * min(math.ceil(2.5 * s), (min(h, w) - 1) // 2) + 1, s)
            for x, s in zip(layer, sigmas)
        ]
    )
    gain, offset = 0.92 + 0.16 * rand(b, 3, 1, 1), 0.08 * rand(b, 3, 1, 1) - 0.04
    noise_std = 0.005 + 0.015 * rand(b, 1, 1, 1)
    out = out * gain + offset + noise_std * torch.randn(b, 3, h, w, generator=generator).to(layer)
    if which == "background":
        coarse = F.interpolate(
            F.avg_pool2d(layer, 8, ceil_mode=True), size=(h, w), mode="bilinear", align_corners=False
        )
        blobs = torch.rand(b, 3, max(1, h // 16), max(1, w // 16), generator=generator).to(layer)
        blobs = F.interpolate(blobs, size=(h, w), mode="bicubic", align_corners=False)
        texture = (
            coarse + 0.25 * (blobs - 0.5) + 0.05 * torch.randn(b, 3, h, w, generator=generator).to(layer)
        )
        out = torch.lerp(out, texture, alpha)
    return out.clamp(0, 1)
