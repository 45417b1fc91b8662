"""Where a background's error comes from: the region analysis of docs/mini.md, on the val split.

Each pixel falls in one region, by the estimated alpha (what the methods see) and the true one:

- ``copied``: estimated alpha at most :data:`~layeringdiff.networks.hfa.COPY_THRESHOLD`
  (HFA copies the composite there, B := C);
- ``thin``: the rest of the pixels whose true alpha is at most 0.5 (semi-transparent strands and
  edge bands: the background shows through, and Eq. 1 ties it to the composite);
- ``hole``: true alpha above 0.5 (the background is mostly hidden and must be filled).

Each region's share is its summed absolute error over the image's full value count, so the three
shares add up to the whole-image MAD that Table 4 reports.

    python -m layeringdiff.mini regions --models OUT/models --num 32 --out OUT/regions_val.json
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

REGIONS = ("copied", "thin", "hole")
ROOT = Path(__file__).resolve().parents[2]


def region_masks(estimated_alpha: torch.Tensor, true_alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    """(1, H, W) alphas -> the three disjoint (1, H, W) float masks, which cover every pixel."""
    from layeringdiff.networks.hfa import COPY_THRESHOLD

    hole = (true_alpha > 0.5).float()
    copied = (estimated_alpha <= COPY_THRESHOLD).float() * (1 - hole)
    return {"copied": copied, "thin": 1 - hole - copied, "hole": hole}


def region_shares(pred: torch.Tensor, target: torch.Tensor, masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each region's summed |pred - target| over the full value count (they add up to the MAD)."""
    error = (pred - target).abs()
    return {name: float((error * mask).sum() / error.numel()) for name, mask in masks.items()}


def methods(models: str | os.PathLike, steps: int = 20) -> dict:
    """The rows sampled: the mini LayeringDiff raw and without HFA, and germer_inpaint (the projected
    row is derived from the raw one by :func:`analyse`)."""
    from omegaconf import OmegaConf

    from layeringdiff.pipeline.inpainters import build_inpainter
    from layeringdiff.pipeline.layering import ClassicalLayering, LayeringDiffLayering

    m = Path(models)
    fg, bg = m / "fbdd_foreground", m / "fbdd_background"

    def mini(hfa: bool):
        fan, ban = (m / "fan", m / "ban") if hfa else (None, None)
        return LayeringDiffLayering.from_pretrained(fg, bg, fan, ban, num_inference_steps=steps, project=False)

    fsr = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "inpainter" / "fsr.yaml"))
    return {
        "layeringdiff": mini(hfa=True),
        "fbdd_only": mini(hfa=False),
        "germer_inpaint": ClassicalLayering(build_inpainter(fsr), project=False, name="germer_inpaint"),
    }


@torch.no_grad()
def analyse(models: str | os.PathLike, num: int = 32, split: str = "val", size: int = 64) -> dict:
    """Mean background shares per region and method (x1e3), F MAD (alpha-weighted, x1e3), pixel fractions."""
    from layeringdiff.data.synthetic import SyntheticLayers
    from layeringdiff.pipeline.foreground import closed_form_matting
    from layeringdiff.pipeline.layering import project_to_composite

    rows = methods(models)
    data = SyntheticLayers(num, size=size, split=split, kernel_range=(1, 5))  # as mini.sh's Table 4
    sums = {name: dict.fromkeys((*REGIONS, "fg_mad"), 0.0) for name in [*rows, "layeringdiff_projected"]}
    fractions = dict.fromkeys(REGIONS, 0.0)
    for i in range(num):
        s = data[i]
        alpha = closed_form_matting(s["composite"], s["trimap"])
        masks = region_masks(alpha, s["alpha"])
        for k in REGIONS:
            fractions[k] += float(masks[k].mean()) / num
        layers = {
            name: layering(s["composite"], alpha, torch.Generator().manual_seed(i), trimap=s["trimap"])
            for name, layering in rows.items()
        }  # projecting the raw output is what the project=True layering does after the same sampling
        layers["layeringdiff_projected"] = project_to_composite(*layers["layeringdiff"], alpha, s["composite"])
        for name, (f, b) in layers.items():
            for k, v in region_shares(b, s["background"], masks).items():
                sums[name][k] += 1e3 * v / num
            sums[name]["fg_mad"] += 1e3 * float(((f - s["foreground"]).abs() * s["alpha"]).mean()) / num
    for row in sums.values():
        row["bg_mad"] = sum(row[k] for k in REGIONS)
    return {"split": split, "num": num, "size": size, "pixel_fractions": fractions, "methods": sums}
