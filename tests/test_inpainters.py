"""Background inpainters (configs/inpainter/): Telea, FSR, SD2 with its logged CPU fallback."""

import logging

import pytest
import torch

from layeringdiff.errors import ConfigError
from layeringdiff.pipeline.inpainters import (
    FSRInpainter,
    SeededSD2Inpainter,
    TeleaInpainter,
    build_inpainter,
)


def edge_scene(size=96):
    """A vertical edge (bright left, dark right) with horizontal texture, and a hole across it."""
    x = torch.arange(size).float()
    image = torch.where(x < size // 2, 0.8, 0.2).expand(3, size, size).clone()
    image += 0.1 * torch.sin(torch.arange(size).float() * 0.9)[None, :, None]  # rows vary
    hole = torch.zeros(1, size, size, dtype=torch.bool)
    hole[:, size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = True
    damaged = torch.where(hole, torch.ones_like(image), image)  # the hole holds white, not the truth
    return image.clamp(0, 1), damaged.clamp(0, 1), hole


# downscaled (max_side 48 of a 96 px window) FSR loses the 7 px row texture but keeps the edge
@pytest.mark.parametrize("max_side, ratio", [(None, 0.7), (48, 0.9)])
def test_fsr_continues_an_edge_into_the_hole_better_than_telea(max_side, ratio):
    truth, damaged, hole = edge_scene()
    fsr = FSRInpainter(max_side=max_side)(damaged, hole)
    telea = TeleaInpainter()(damaged, hole)
    for out in (fsr, telea):  # outside the hole nothing changes
        assert torch.equal(out[hole.expand(3, -1, -1) == 0], damaged[hole.expand(3, -1, -1) == 0])
    h = hole.expand(3, -1, -1)
    err_fsr = (fsr - truth)[h].abs().mean()
    err_telea = (telea - truth)[h].abs().mean()
    assert err_fsr < ratio * err_telea, (float(err_fsr), float(err_telea))
    assert err_fsr < 0.07
    assert (fsr[h] - 1).abs().min() > 0  # no white left from the damaged hole


def test_fsr_and_telea_return_the_image_without_a_hole():
    truth, _, hole = edge_scene(32)
    none = torch.zeros_like(hole)
    assert torch.equal(FSRInpainter()(truth, none), truth)
    assert torch.equal(TeleaInpainter()(truth, none), truth)


def test_build_inpainter_kinds_and_bad_values():
    assert isinstance(build_inpainter(None), TeleaInpainter)
    assert build_inpainter({"kind": "telea", "radius": 3}).radius == 3
    fsr = build_inpainter({"kind": "fsr", "variant": "best", "max_side": 64, "radius": 9})  # radius ignored
    assert isinstance(fsr, FSRInpainter) and fsr.variant == "best" and fsr.max_side == 64
    with pytest.raises(ConfigError, match="kind must be one of"):
        build_inpainter({"kind": "patchmatch"})
    with pytest.raises(ConfigError, match="variant"):
        build_inpainter({"kind": "fsr", "variant": "slow"})


@pytest.mark.parametrize("weights", [None, "missing"])
def test_sd2_without_weights_falls_back_with_a_logged_line(tmp_path, caplog, weights):
    spec = {"kind": "sd2", "weights": None if weights is None else str(tmp_path / weights), "fallback": "fsr"}
    with caplog.at_level(logging.WARNING, logger="layeringdiff.pipeline.inpainters"):
        inpainter = build_inpainter(spec)
    assert isinstance(inpainter, FSRInpainter)
    lines = [
        r.getMessage()
        for r in caplog.records
        if "falls back" in r.getMessage() or "fallback" in r.getMessage()
    ]
    assert len(lines) == 1 and "sd2" in lines[0] and "fsr" in lines[0]
    assert isinstance(build_inpainter({**spec, "fallback": "telea"}), TeleaInpainter)


def test_sd2_inpainter_on_the_tiny_repo(repo):
    inpainter = build_inpainter({"kind": "sd2", "weights": str(repo), "num_inference_steps": 2, "seed": 0})
    assert isinstance(inpainter, SeededSD2Inpainter)
    pipe = inpainter.inpainter.pipe
    assert type(pipe).__name__ == "StableDiffusionInpaintPipeline"
    assert pipe.text_encoder is not None and pipe.tokenizer is not None  # the prompt is encoded
    truth, damaged, hole = edge_scene(32)
    a = inpainter(damaged, hole, torch.Generator().manual_seed(1))
    b = inpainter(damaged, hole, torch.Generator().manual_seed(2))
    h = hole.expand(3, -1, -1)
    assert a.shape == damaged.shape and torch.equal(a[~h], damaged[~h])
    assert (a[h] - damaged[h]).abs().max() > 0.01  # the hole was filled
    assert torch.equal(a, b)  # fixed seed: the caller's generator does not matter
    inpainter.seed = None
    c = inpainter(damaged, hole, torch.Generator().manual_seed(1))
    d = inpainter(damaged, hole, torch.Generator().manual_seed(2))
    assert not torch.equal(c, d)


def test_configs_pick_the_inpainters(compose_config, tmp_path):
    infer = compose_config("infer", tmp_path)
    assert infer.layering.inpainter.kind == "fsr"
    other = compose_config("infer", tmp_path, ["inpainter@layering.inpainter=telea"])
    assert other.layering.inpainter.kind == "telea"
    table4 = compose_config("evaluate", tmp_path, ["eval=table4"])
    for row in ("germer_inpaint", "fba_inpaint"):
        node = table4.eval.layerings[row].inpainter
        assert node.kind == "sd2" and node.fallback == "fsr" and node.seed == 0
    assert "inpainter" not in table4.eval.layerings.germer and "inpainter" not in table4.eval.layerings.fba
    tiny = compose_config("infer", tmp_path, ["pipeline=tiny"])
    assert tiny.layering.inpainter.kind == "sd2" and tiny.layering.inpainter.num_inference_steps == 2
