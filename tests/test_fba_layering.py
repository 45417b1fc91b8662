"""FBA Matting as a layering member: the Table 4 rows ``fba`` / ``fba_inpaint`` on a tiny build."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from test_eval_table4 import compose_eval

from layeringdiff.errors import find_user_error
from layeringdiff.networks.fba import FBANet
from layeringdiff.networks.fba_matting import FBAMatting, save_pretrained
from layeringdiff.pipeline.fba_layering import FBALayering
from layeringdiff.pipeline.layering import Layering
from layeringdiff.tasks.evaluate import evaluate
from layeringdiff.weights import MissingWeightsError

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
TINY = {"base_width": 8, "blocks": [1, 1, 1, 1], "decoder_width": 16, "norm_groups": 4}


@pytest.fixture(scope="module")
def tiny_fba(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = FBANet(**TINY)
    with torch.no_grad():
        net.decoder.conv_up4[4].bias[0] += 0.5  # alpha mid-range, so some of it is above 0.95
    return save_pretrained(net, tmp_path_factory.mktemp("fba") / "fba")


def sample(size: int = 40):
    g = torch.Generator().manual_seed(3)
    image = torch.rand(3, size, size, generator=g)
    alpha = torch.zeros(1, size, size)
    alpha[:, 10:30, 10:30] = 1.0
    alpha[:, 8:32, 8:10] = 0.5
    trimap = torch.full_like(alpha, 0.5)
    trimap[:, :6] = 0.0
    trimap[:, 14:26, 14:26] = 1.0
    return image, alpha, trimap


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=0, atol=1e-5)


def test_fba_member_gives_fba_layers_and_inpaints_only_the_hole(tiny_fba):
    image, alpha, trimap = sample()
    fba = FBALayering.from_pretrained(tiny_fba, name="fba")
    assert isinstance(fba, Layering) and fba.name == "fba"
    fg, bg = fba(image, alpha, trimap=trimap)
    ref = FBAMatting.from_pretrained(tiny_fba)(image, trimap)
    # separate forward passes may differ in the last bits (the CPU kernels depend on alignment)
    assert close(fg, ref["foreground"]) and close(bg, ref["background"])
    inp = FBALayering.from_pretrained(tiny_fba, inpaint=True, name="fba_inpaint")
    fg2, bg2 = inp(image, alpha, trimap=trimap)
    hole = (alpha > 0.95).expand(3, -1, -1)
    assert close(fg2, fg) and close(bg2[~hole], bg[~hole])
    assert (bg2[hole] - bg[hole]).abs().max() > 0.05
    # the hole from FBA's own alpha instead: different pixels
    own = FBALayering.from_pretrained(tiny_fba, inpaint=True, hole_alpha="fba", inpainter={"kind": "telea"})
    own_hole = (ref["alpha"] > 0.95).expand(3, -1, -1)
    assert not torch.equal(own_hole, hole)
    _, bg3 = own(image, alpha, trimap=trimap)
    assert close(bg3[~own_hole], bg[~own_hole])
    assert (bg3 - bg2).abs().max() > 0.05


def test_fba_member_without_trimap_uses_the_definite_alpha(tiny_fba):
    image, alpha, _ = sample()
    fg, bg = FBALayering.from_pretrained(tiny_fba)(image, alpha)
    opaque, clear = (alpha == 1).expand(3, -1, -1), (alpha == 0).expand(3, -1, -1)
    assert torch.equal(fg[opaque], image[opaque]) and torch.equal(bg[clear], image[clear])


def test_fba_member_errors_are_one_line(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        FBALayering.from_pretrained(tmp_path / "weights" / "fba")
    assert "\n" not in str(e.value) and "data/convert_fba.py" in str(e.value)
    with pytest.raises(ValueError, match="hole_alpha"):
        FBALayering(None, hole_alpha="gt")


def compose_table4(tmp_path, overrides):
    cfg = compose_eval(
        tmp_path,
        [
            f"paths.weights_dir={tmp_path / 'weights'}",
            "eval=table4",
            "eval.dataset.num_samples=2",
            "eval.dataset.size=32",
            "eval.figure_samples=0",
            "eval.lpips=false",
            "metrics.build_tiny=true",
            *overrides,
        ],
    )
    with open_dict(cfg):
        cfg.eval.matting = None  # the ground-truth alpha
    return cfg


def test_table4_lists_the_fba_rows_and_runs_them_on_a_tiny_build(tmp_path, tiny_fba):
    cfg = compose_table4(tmp_path, ["eval.methods=[fba,fba_inpaint,copy]"])
    assert cfg.eval.layerings.fba.weights == str(tmp_path / "weights" / "fba")
    assert cfg.eval.layerings.fba_inpaint.inpaint is True
    with pytest.raises(Exception) as e:  # before any sample is processed
        evaluate(cfg)
    error = find_user_error(e.value)  # what the entry point prints (Hydra wraps it)
    assert isinstance(error, MissingWeightsError) and "\n" not in str(error)
    assert str(error).startswith(f"FBA Matting: no folder at {tmp_path / 'weights' / 'fba'}")
    assert not (tmp_path / "table4_samples.jsonl").exists()
    with open_dict(cfg):
        cfg.eval.layerings.fba.weights = str(tiny_fba)
        cfg.eval.layerings.fba_inpaint.weights = str(tiny_fba)
    result = evaluate(cfg)
    rows = {r["method"]: r for r in json.loads((tmp_path / "table4.json").read_text())["rows"]}
    assert rows["fba"]["count"] == rows["fba_inpaint"]["count"] == 2
    assert result["fba/fg_mad"] == pytest.approx(result["fba_inpaint/fg_mad"])  # F untouched
    assert result["fba/bg_mad"] != pytest.approx(result["fba_inpaint/bg_mad"])  # B inpainted
    assert result["fba/fg_mad"] != pytest.approx(result["copy/fg_mad"])


def test_infer_with_the_fba_member_on_the_tiny_pipeline(tmp_path, tmp_path_factory):
    """``infer.py pipeline=tiny layering=fba image=... trimap=...``: the tiny FBA folder is built,
    the member gets the trimap, and F is the image on its definite foreground."""
    from PIL import Image

    from layeringdiff.tasks.infer import infer

    cache = tmp_path_factory.getbasetemp() / "tiny_cache"  # the tiny repos tests/test_infer.py builds
    g = torch.Generator().manual_seed(5)
    image = torch.rand(3, 48, 40, generator=g)
    trimap = torch.zeros(48, 40)
    trimap[8:40, 8:32] = 0.5
    trimap[16:32, 14:26] = 1.0
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(tmp_path / "im.png")
    Image.fromarray((trimap.numpy() * 255).round().astype("uint8")).save(tmp_path / "tri.png")
    overrides = [
        f"paths.output_dir={tmp_path / 'run'}", f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.cache_dir={cache}", "progress=false", "pipeline=tiny", "layering=fba",
        f"image={tmp_path / 'im.png'}", f"trimap={tmp_path / 'tri.png'}", f"out={tmp_path / 'out'}",
    ]  # fmt: skip
    with initialize_config_dir(CONFIGS, version_base="1.3"):
        cfg = compose("infer", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    assert cfg.layering.weights == str(cache / "tiny" / "layering" / "fba")
    infer(cfg)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["layering"] == "fba"
    fg = torch.from_numpy(np.array(Image.open(tmp_path / "out" / "foreground.png"))).float()
    inside = trimap == 1
    rgb = (image.permute(1, 2, 0) * 255).round()
    assert (fg[..., :3][inside] - rgb[inside]).abs().max() <= 1
