"""FBA Matting (Forte & Pitié, "F, B, Alpha Matting", 2020): alpha, F and B from image + trimap.

Written here from the published architecture, with the parameter names of the authors' released
checkpoint, so that their weights load with a strict ``load_state_dict`` (after
:func:`layeringdiff.networks.fba_matting.convert_released` has turned the pickle into safetensors):

* encoder: a ResNet-50 (bottlenecks 3-4-6-3) whose convolutions use weight standardisation and
  whose norms are GroupNorm(32), made dilated (layer3 dilation 2, layer4 dilation 4, output
  stride 8); its first convolution takes 11 channels: the ImageNet-normalised image (3), the six
  Gaussian trimap distance encodings (:func:`~layeringdiff.networks.fba_matting.trimap_encodings`)
  and the two-channel trimap (background, foreground);
* decoder: pyramid pooling (scales 1, 2, 3, 6) on the deepest features, then three upsampling
  stages with skips from layer1, the stem and finally the normalised image, the raw image and
  the trimap, ending in a 1x1 convolution to 7 channels: alpha (clamped to [0, 1]), F and B
  (sigmoids), refined once by the paper's F/B/alpha fusion.

Weight standardisation is applied functionally in every forward; the authors' code rewrites the
stored weights in place instead (once when switching to eval mode), which gives the same
inference result. Only inference is provided here; FBA is a baseline, not trained by us.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 3 + 6 + 2  # normalised image, trimap encodings, two-channel trimap
OUT_CHANNELS = 7  # alpha, F (3), B (3)
FUSION_LAMBDA = 0.1  # weight of the network's alpha in the fusion step (the paper's lambda)


class WSConv2d(nn.Conv2d):
    """Convolution with weight standardisation: each output filter has zero mean and unit
    (biased) variance over its inputs and taps before it is applied (eps 1e-5 inside the root)."""

    eps = 1e-5

    def standardized_weight(self) -> torch.Tensor:
        w = self.weight.flatten(1)
        mean = w.mean(dim=1, keepdim=True)
        var = w.var(dim=1, unbiased=False, keepdim=True)
        return ((w - mean) / torch.sqrt(var + self.eps)).view_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.standardized_weight(), self.bias)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1, x4 channels) with WS convolutions and GroupNorm.

    ``stride`` and ``dilation`` act on the 3x3 convolution; ``project`` adds the 1x1 shortcut
    projection (``downsample``) when the shape changes.
    """

    expansion = 4

    def __init__(
        self, in_ch: int, planes: int, groups: int, stride: int = 1, dilation: int = 1, project: bool = False
    ):
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = WSConv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.GroupNorm(groups, planes)
        self.conv2 = WSConv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.GroupNorm(groups, planes)
        self.conv3 = WSConv2d(planes, out_ch, 1, bias=False)
        self.bn3 = nn.GroupNorm(groups, out_ch)
        self.downsample = (
            nn.Sequential(WSConv2d(in_ch, out_ch, 1, stride, bias=False), nn.GroupNorm(groups, out_ch))
            if project
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y + shortcut)


class EncoderFeatures(NamedTuple):
    """What the decoder reads from the encoder."""

    inputs: torch.Tensor  # the 11-channel network input (full resolution)
    stem: torch.Tensor  # after conv1 + GroupNorm + ReLU (1/2)
    layer1: torch.Tensor  # (1/4)
    deepest: torch.Tensor  # layer4 (1/8)


class FBAEncoder(nn.Module):
    """Dilated ResNet-50 (output stride 8) with WS convolutions and GroupNorm.

    Stage ``i`` (layer1..layer4) has ``blocks[i]`` bottlenecks of width ``base_width * 2**i``.
    layer2 halves the resolution; layer3 and layer4 keep it and dilate their 3x3 convolutions
    instead: the first block of each uses half the stage's dilation (2 -> 1, 4 -> 2), the rest
    the full dilation (2, 4).
    """

    def __init__(self, base_width: int = 64, blocks: Sequence[int] = (3, 4, 6, 3), groups: int = 32):
        super().__init__()
        self.conv1 = WSConv2d(IN_CHANNELS, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.GroupNorm(groups, base_width)
        in_ch = base_width
        # (stride of the first block, dilation of the first block, dilation of the others)
        plans = [(1, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4)]
        for index, (count, (stride, first, rest)) in enumerate(zip(blocks, plans, strict=True)):
            planes = base_width * 2**index
            units = []
            for b in range(int(count)):
                # every stage's first block projects its shortcut (layer1 widens, the others were
                # built with stride 2 before dilation replaced it)
                head = b == 0
                units.append(
                    Bottleneck(in_ch, planes, groups, stride if head else 1, first if head else rest, head)
                )
                in_ch = planes * Bottleneck.expansion
            self.add_module(f"layer{index + 1}", nn.Sequential(*units))
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        stem = F.relu(self.bn1(self.conv1(x)))
        y = self.layer1(F.max_pool2d(stem, kernel_size=3, stride=2, padding=1))
        layer1 = y
        y = self.layer4(self.layer3(self.layer2(y)))
        return EncoderFeatures(x, stem, layer1, y)


def _ws_block(in_ch: int, out_ch: int, groups: int, kernel: int = 3) -> list[nn.Module]:
    return [
        WSConv2d(in_ch, out_ch, kernel, padding=kernel // 2),
        nn.GroupNorm(groups, out_ch),
        nn.LeakyReLU(),
    ]


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class FBADecoder(nn.Module):
    """Pyramid pooling, three x2 upsampling stages with skips, and the 7-channel head."""

    def __init__(
        self,
        encoder_channels: int = 2048,
        skip_channels: int = 256,
        stem_channels: int = 64,
        width: int = 256,
        groups: int = 32,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
    ):
        super().__init__()
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(int(s)), *_ws_block(encoder_channels, width, groups, kernel=1))
            for s in pool_scales
        )
        pyramid = encoder_channels + len(pool_scales) * width
        self.conv_up1 = nn.Sequential(*_ws_block(pyramid, width, groups), *_ws_block(width, width, groups))
        self.conv_up2 = nn.Sequential(*_ws_block(width + skip_channels, width, groups))
        self.conv_up3 = nn.Sequential(*_ws_block(width + stem_channels, stem_channels, groups))
        head_in = stem_channels + 3 + 3 + 2  # + normalised image, image, two-channel trimap
        self.conv_up4 = nn.Sequential(
            nn.Conv2d(head_in, 32, 3, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(32, 16, 3, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(16, OUT_CHANNELS, 1),
        )

    def forward(self, feats: EncoderFeatures, image: torch.Tensor, trimap2: torch.Tensor) -> torch.Tensor:
        deep = feats.deepest
        size = deep.shape[-2:]
        pooled = [F.interpolate(p(deep), size, mode="bilinear", align_corners=False) for p in self.ppm]
        x = _up2(self.conv_up1(torch.cat([deep, *pooled], 1)))
        x = _up2(self.conv_up2(torch.cat([x, feats.layer1], 1)))
        x = _up2(self.conv_up3(torch.cat([x, feats.stem], 1)))
        x = torch.cat([x, feats.inputs[:, :3], image, trimap2], 1)
        return self.conv_up4(x)


def fba_fusion(
    alpha: torch.Tensor, image: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, lam: float = FUSION_LAMBDA
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the paper's fusion: F and B moved towards agreement with the composite under
    the network's alpha, then alpha re-estimated from them, with the network's alpha as a prior of
    weight ``lam``; returns (alpha, F, B) in [0, 1].

    As in the released model, B is updated with the already-updated (not yet clipped) F, and both
    are clipped to [0, 1] before the alpha step.
    """
    a = alpha
    fg_new = a * image + (1 - a**2) * fg - a * (1 - a) * bg
    bg_new = ((1 - a) * image + (2 * a - a**2) * bg - a * (1 - a) * fg_new).clamp(0, 1)
    fg_new = fg_new.clamp(0, 1)
    diff = fg_new - bg_new
    num = a * lam + ((image - bg_new) * diff).sum(1, keepdim=True)
    den = (diff * diff).sum(1, keepdim=True) + lam
    return (num / den).clamp(0, 1), fg_new, bg_new


class FBANet(nn.Module):
    """The FBA Matting network: ``forward(image, trimap2, image_norm, encodings) -> (B, 7, H, W)``.

    Args:
        base_width: encoder stem width (64 in the paper); stage widths follow ResNet-50.
        blocks: bottlenecks per encoder stage ((3, 4, 6, 3) = ResNet-50).
        decoder_width: channels of the pyramid pooling and first decoder stages (256).
        norm_groups: GroupNorm groups everywhere (32); must divide every width.
        pool_scales: pyramid pooling output sizes.

    The defaults are the released model; tiny test builds shrink the widths and depths.
    ``H`` and ``W`` must be multiples of 8 (:class:`layeringdiff.networks.fba_matting.FBAMatting`
    pads).
    """

    def __init__(
        self,
        base_width: int = 64,
        blocks: Sequence[int] = (3, 4, 6, 3),
        decoder_width: int = 256,
        norm_groups: int = 32,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
    ):
        super().__init__()
        self.config = {
            "base_width": int(base_width),
            "blocks": [int(b) for b in blocks],
            "decoder_width": int(decoder_width),
            "norm_groups": int(norm_groups),
            "pool_scales": [int(s) for s in pool_scales],
        }
        widths = [base_width, decoder_width] + [base_width * 2**i * Bottleneck.expansion for i in range(4)]
        if any(w % norm_groups for w in widths) or len(self.config["blocks"]) != 4:
            raise ValueError(f"FBANet: norm_groups={norm_groups} must divide every width {widths}, 4 stages")
        self.encoder = FBAEncoder(base_width, blocks, norm_groups)
        self.decoder = FBADecoder(
            self.encoder.out_channels, base_width * Bottleneck.expansion, base_width, decoder_width,
            norm_groups, pool_scales,
        )  # fmt: skip

    def forward(
        self, image: torch.Tensor, trimap2: torch.Tensor, image_norm: torch.Tensor, encodings: torch.Tensor
    ) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1]; trimap2 (B, 2, H, W) (background, foreground) in {0, 1};
        image_norm: the ImageNet-normalised image; encodings (B, 6, H, W). Returns alpha (1), F (3),
        B (3) concatenated, all in [0, 1]."""
        feats = self.encoder(torch.cat([image_norm, encodings, trimap2], 1))
        out = self.decoder(feats, image, trimap2)
        alpha = out[:, :1].clamp(0, 1)
        fg, bg = torch.sigmoid(out[:, 1:4]), torch.sigmoid(out[:, 4:7])
        return torch.cat(fba_fusion(alpha, image, fg, bg), 1)
