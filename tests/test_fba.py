"""FBA Matting: the released parameter layout, the forward contract, the converter, the encodings."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from layeringdiff.networks.fba import FBANet, WSConv2d, fba_fusion
from layeringdiff.networks.fba_matting import (
    FBAMatting,
    convert_released,
    load_pretrained,
    save_pretrained,
    trimap_encodings,
    two_channel_trimap,
)
from layeringdiff.weights import MissingWeightsError

TINY = {"base_width": 8, "blocks": [1, 1, 1, 1], "decoder_width": 16, "norm_groups": 4}


def tiny_net(seed: int = 0) -> FBANet:
    torch.manual_seed(seed)
    return FBANet(**TINY)


def released_layout() -> dict[str, tuple[int, ...]]:
    """The authors' FBA.pth key -> shape table, from their published layer definitions: a ResNet-50
    (11 input channels, no fc) as ``encoder``; pyramid pooling, conv_up1..4 as ``decoder``."""
    table: dict[str, tuple[int, ...]] = {}

    def conv(name, out_ch, in_ch, k, bias=False):
        table[f"{name}.weight"] = (out_ch, in_ch, k, k)
        if bias:
            table[f"{name}.bias"] = (out_ch,)

    def norm(name, ch):
        table[f"{name}.weight"] = table[f"{name}.bias"] = (ch,)

    conv("encoder.conv1", 64, 11, 7)
    norm("encoder.bn1", 64)
    in_ch = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for b in range(count):
            p = f"encoder.layer{stage}.{b}"
            conv(f"{p}.conv1", planes, in_ch, 1), norm(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3), norm(f"{p}.bn2", planes)
            conv(f"{p}.conv3", planes * 4, planes, 1), norm(f"{p}.bn3", planes * 4)
            if b == 0:
                conv(f"{p}.downsample.0", planes * 4, in_ch, 1), norm(f"{p}.downsample.1", planes * 4)
            in_ch = planes * 4
    for s in range(4):
        conv(f"decoder.ppm.{s}.1", 256, 2048, 1, bias=True), norm(f"decoder.ppm.{s}.2", 256)
    conv("decoder.conv_up1.0", 256, 2048 + 4 * 256, 3, bias=True), norm("decoder.conv_up1.1", 256)
    conv("decoder.conv_up1.3", 256, 256, 3, bias=True), norm("decoder.conv_up1.4", 256)
    conv("decoder.conv_up2.0", 256, 256 + 256, 3, bias=True), norm("decoder.conv_up2.1", 256)
    conv("decoder.conv_up3.0", 64, 256 + 64, 3, bias=True), norm("decoder.conv_up3.1", 64)
    conv("decoder.conv_up4.0", 32, 64 + 3 + 3 + 2, 3, bias=True)
    conv("decoder.conv_up4.2", 16, 32, 3, bias=True)
    conv("decoder.conv_up4.4", 7, 16, 1, bias=True)
    return table


def test_full_size_build_has_the_released_layout_and_loads_it_strictly():
    table = released_layout()
    # spot checks written out, and the size of the released file (139 MB of float32)
    assert table["encoder.conv1.weight"] == (64, 11, 7, 7)
    assert table["encoder.layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    assert table["decoder.conv_up1.0.weight"] == (256, 3072, 3, 3)
    assert table["decoder.conv_up4.4.weight"] == (7, 16, 1, 1)
    assert len(table) == 197 and sum(int(np.prod(s)) for s in table.values()) == 34_693_031
    net = FBANet()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == table
    state = {k: torch.full(s, float(i % 7) - 3.0) for i, (k, s) in enumerate(table.items())}
    net.load_state_dict(state, strict=True)
    assert torch.equal(net.decoder.conv_up4[4].weight, state["decoder.conv_up4.4.weight"])
    # the dilated ResNet: output stride 8, layer3 / layer4 dilate instead of striding
    l3, l4 = net.encoder.layer3, net.encoder.layer4
    assert [(m.conv2.stride, m.conv2.dilation) for m in (l3[0], l3[1], l4[0], l4[1])] == [
        ((1, 1), (1, 1)), ((1, 1), (2, 2)), ((1, 1), (2, 2)), ((1, 1), (4, 4))
    ]  # fmt: skip
    assert net.encoder.layer2[0].conv2.stride == (2, 2) and l3[0].downsample[0].stride == (1, 1)


def test_tiny_forward_contract():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 64, generator=g)
    trimap = torch.full((1, 64, 64), 0.5)
    trimap[:, :18] = 0.0
    trimap[:, 46:] = 1.0
    net = tiny_net()
    with torch.no_grad():
        net.decoder.conv_up4[4].bias[0] += 0.5  # alpha mid-range before the fusion
    out = FBAMatting(net)(image, trimap)
    assert out["alpha"].shape == (1, 64, 64)
    assert out["foreground"].shape == out["background"].shape == (3, 64, 64)
    for v in out.values():
        assert v.dtype == torch.float32 and v.min() >= 0 and v.max() <= 1
    assert (out["alpha"][trimap == 0] == 0).all() and (out["alpha"][trimap == 1] == 1).all()
    fg_region, bg_region = (trimap == 1).expand(3, -1, -1), (trimap == 0).expand(3, -1, -1)
    assert torch.equal(out["foreground"][fg_region], image[fg_region])
    assert torch.equal(out["background"][bg_region], image[bg_region])
    unknown = out["alpha"][trimap == 0.5]
    assert unknown.std() > 0.01  # the unknown band is predicted, not filled
    # the raw network: 7 channels at full resolution, each in [0, 1]
    t2 = two_channel_trimap(trimap[None])
    raw = net(image[None], t2, image[None], trimap_encodings(t2))
    assert raw.shape == (1, 7, 64, 64) and raw.min() >= 0 and raw.max() <= 1
    # sides that are not multiples of 8 are padded and cropped back
    odd = FBAMatting(net)(image[:, :61, :50], trimap[:, :61, :50])
    assert odd["alpha"].shape == (1, 61, 50) and odd["background"].shape == (3, 61, 50)
    with pytest.raises(ValueError, match="trimap values"):
        FBAMatting(net)(image, trimap * 0.9)


def seeded_state(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, torch.Tensor], torch.Generator]:
    """Deterministic weights (explicit generator, sorted names): N(0, 0.1), norm scales near 1, a
    quieter head whose alpha starts mid-range. The generator goes on to draw the test image."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for k in sorted(shapes):
        x = torch.randn(shapes[k], generator=g) * 0.1
        if len(shapes[k]) == 1 and k.endswith("weight"):
            x = x + 1
        if ".conv_up4." in k:
            x = x * 0.5
        state[k] = x
    state["decoder.conv_up4.4.bias"][0] += 0.5
    return state, g


def test_full_size_output_matches_the_authors_implementation():
    """tests/data/fba_reference.npz was written by the authors' public code (their network,
    ``model.eval()``, and demo.py's ``pred`` fix-ups) with these weights on this image and trimap;
    float32 on the CPU."""
    ref = np.load(Path(__file__).parent / "data" / "fba_reference.npz")
    net = FBANet()
    state, g = seeded_state({k: tuple(v.shape) for k, v in net.state_dict().items()})
    net.load_state_dict(state, strict=True)
    image = torch.rand(3, 32, 40, generator=g)
    out = FBAMatting(net)(image, torch.from_numpy(ref["trimap"])[None])
    for key in ("alpha", "foreground", "background"):
        np.testing.assert_allclose(out[key].numpy(), ref[key], atol=5e-4, err_msg=key)  # float32 noise ~6e-5
    assert ref["alpha"][0][ref["trimap"] == 0.5].std() > 0.1  # the reference is not saturated


def test_ws_conv_matches_batch_norm_standardisation():
    conv = WSConv2d(5, 6, 3, padding=1)
    # the authors' formulation: batch norm over each filter's (in x k x k) weights, eps 1e-5
    ref_w = F.batch_norm(conv.weight.view(1, 6, -1), None, None, training=True, eps=1e-5).view_as(conv.weight)
    assert torch.allclose(conv.standardized_weight(), ref_w, atol=1e-6)
    x = torch.randn(2, 5, 9, 9)
    assert torch.allclose(conv(x), F.conv2d(x, ref_w, conv.bias, padding=1), atol=1e-5)


def test_fusion_keeps_consistent_layers_and_reduces_the_composite_error():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 1, 8, 8, generator=g)
    fg, bg = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    image = a * fg + (1 - a) * bg
    a2, fg2, bg2 = fba_fusion(a, image, fg, bg)
    assert torch.allclose(fg2, fg, atol=1e-5) and torch.allclose(bg2, bg, atol=1e-5)
    assert torch.allclose(a2, a, atol=1e-5)
    noisy_fg = (fg + 0.2 * torch.randn(fg.shape, generator=g)).clamp(0, 1)
    _, fg3, bg3 = fba_fusion(a, image, noisy_fg, bg)
    before = (a * noisy_fg + (1 - a) * bg - image).abs().mean()
    assert (a * fg3 + (1 - a) * bg3 - image).abs().mean() < 0.5 * before


def test_trimap_encodings_match_scipy_distance_transform():
    trimap = torch.full((1, 1, 23, 31), 0.5)
    trimap[..., :5, :] = 0.0
    trimap[..., 15:, 20:] = 1.0
    trimap[..., 9, 3] = 1.0
    enc = trimap_encodings(two_channel_trimap(trimap))
    assert enc.shape == (1, 6, 23, 31)
    t = trimap[0, 0].numpy()
    for k, region in enumerate((t == 0, t == 1)):
        d = distance_transform_edt(~region)
        for j, frac in enumerate((0.02, 0.08, 0.16)):
            want = np.exp(-(d**2) / (2 * (frac * 320) ** 2))
            np.testing.assert_allclose(enc[0, 3 * k + j].numpy(), want, rtol=1e-4, atol=1e-6)
    assert torch.equal(trimap_encodings(torch.zeros(1, 2, 4, 4)), torch.zeros(1, 6, 4, 4))


def test_converter_round_trip(tmp_path):
    state = {k: torch.randn(v.shape) for k, v in tiny_net().state_dict().items()}
    pth = tmp_path / "FBA.pth"
    torch.save(state, pth)
    out = convert_released(pth, tmp_path / "fba", **TINY)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((out / "config.json").read_text()) == {**TINY, "pool_scales": [1, 2, 3, 6]}
    loaded = load_pretrained(out)
    got = loaded.state_dict()
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    # a checkpoint that misses a tensor is refused by the strict load, in one line
    del state["decoder.conv_up4.4.bias"]
    torch.save(state, pth)
    with pytest.raises(ValueError, match=r"does not match.*conv_up4\.4\.bias") as e:
        convert_released(pth, tmp_path / "fba2", **TINY)
    assert "\n" not in str(e.value) and not (tmp_path / "fba2").exists()


class NotATensor:
    pass


def test_converter_never_unpickles_code(tmp_path):
    pth = tmp_path / "evil.pth"
    torch.save({"x": NotATensor()}, pth)
    with pytest.raises(ValueError, match="weights-only"):
        convert_released(pth, tmp_path / "out", **TINY)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    try:
        from convert_fba import main
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit, match="convert_fba: FBA Matting: no checkpoint at"):
        main(["--checkpoint", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "o")])


def test_convert_cli_writes_a_loadable_folder_and_keeps_an_existing_one(tmp_path, monkeypatch):
    import functools

    import layeringdiff.networks.fba_matting as fm

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    try:
        from convert_fba import main
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(fm, "FBANet", functools.partial(FBANet, **TINY))  # the CLI builds the full size
    state = tiny_net(seed=4).state_dict()
    torch.save(state, tmp_path / "FBA.pth")
    out = main(["--checkpoint", str(tmp_path / "FBA.pth"), "--out", str(tmp_path / "weights" / "fba")])
    got = load_pretrained(out).state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match="already exists and is not empty"):
        main(["--checkpoint", str(tmp_path / "FBA.pth"), "--out", str(out)])
    assert (out / "model.safetensors").read_bytes() == before


def test_missing_weights_is_one_line_with_the_conversion_hint(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        FBAMatting.from_pretrained(tmp_path / "weights" / "fba")
    msg = str(e.value)
    assert "\n" not in msg and "FBA Matting" in msg and str(tmp_path / "weights" / "fba") in msg
    assert "data/convert_fba.py" in msg
    net = tiny_net()
    folder = save_pretrained(net, tmp_path / "ok")
    (folder / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="model.safetensors"):
        load_pretrained(folder)
