import json

import pytest
import torch

from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.networks.haar import haar_highfreq_loss
from layeringdiff.networks.hfa import COPY_THRESHOLD, HFANet, copy_through, degrade_like_fbdd, refine
from layeringdiff.training.hfa_module import HFAModule


def tiny_net(layer: str, residual: bool = True, seed: int = 0) -> HFANet:
    torch.manual_seed(seed)
    return HFANet(
        layer=layer, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, residual=residual
    )


def batch_of(n: int = 2, size: int = 32) -> dict:
    ds = SyntheticLayers(n, size=size, seed=0)
    samples = [ds[i] for i in range(n)]
    batch = {
        k: torch.stack([s[k] for s in samples]) for k in ("composite", "foreground", "background", "alpha")
    }
    batch["key"] = [s["key"] for s in samples]
    return batch


def test_copy_through_is_exact():
    g = torch.Generator().manual_seed(0)
    comp, fbdd = torch.rand(2, 3, 20, 28, generator=g), torch.rand(2, 3, 20, 28, generator=g)
    alpha = torch.rand(2, 1, 20, 28, generator=g)
    alpha[:, :, :6] = 1.0
    alpha[:, :, -6:] = 0.0
    alpha[:, :, 8, :3] = 1 - COPY_THRESHOLD / 2  # counts as opaque
    for layer, known in (
        ("foreground", alpha >= 1 - COPY_THRESHOLD),
        ("background", alpha <= COPY_THRESHOLD),
    ):
        net = tiny_net(layer, residual=False)  # random output, far from the composite
        out = refine(net, comp, alpha, fbdd)
        assert out.shape == (2, 3, 20, 28) and out.min() >= 0 and out.max() <= 1
        k = known.expand_as(comp)
        assert torch.equal(out[k], comp[k])  # bit-exact copy
        assert (out[~k] != comp[~k]).float().mean() > 0.99
        assert torch.equal(out[~k], net(comp, alpha, fbdd).clamp(0, 1)[~k])
    assert torch.equal(copy_through(fbdd, comp, alpha, "ban"), refine(tiny_net("ban"), comp, alpha, fbdd))


def test_save_load_roundtrip_and_inputs(tmp_path):
    net = tiny_net("background", residual=False)
    net.save_pretrained(tmp_path / "ban")
    assert {p.name for p in (tmp_path / "ban").iterdir()} == {
        "config.json",
        "diffusion_pytorch_model.safetensors",
    }
    assert json.loads((tmp_path / "ban" / "config.json").read_text())["residual"] is False
    loaded = HFANet.from_pretrained(tmp_path / "ban")
    assert loaded.config.layer == "background" and list(loaded.config.block_out_channels) == [8, 16]
    b = batch_of(2, size=32)
    fbdd = degrade_like_fbdd(b["background"], b["alpha"], "background", torch.Generator().manual_seed(1))
    # odd sizes are padded inside the net and cropped back
    comp, alpha, fb = b["composite"][..., :27, :31], b["alpha"][..., :27, :31], fbdd[..., :27, :31]
    out = refine(loaded, comp, alpha, fb)
    assert out.shape == (2, 3, 27, 31)
    assert torch.equal(out, refine(net, comp, alpha, fb))
    # batch vs single
    torch.testing.assert_close(refine(loaded, comp[1:], alpha[1:], fb[1:]), out[1:])
    with pytest.raises(ValueError, match="trained for background"):
        refine(loaded, comp, alpha, fb, layer="foreground")
    with pytest.raises(ValueError, match="alpha must be"):
        loaded(comp, alpha[..., :5], fb)


def test_residual_net_starts_as_identity_on_fbdd_layer():
    b = batch_of(1)
    out = tiny_net("foreground")(b["composite"], b["alpha"], b["foreground"])
    assert torch.equal(out, b["foreground"])


def test_degrade_mode_is_seeded_and_hallucinates_where_occluded():
    b = batch_of(2, size=64)
    gt, alpha = b["background"], b["alpha"]
    x1 = degrade_like_fbdd(gt, alpha, "ban", torch.Generator().manual_seed(3))
    x2 = degrade_like_fbdd(gt, alpha, "ban", torch.Generator().manual_seed(3))
    assert torch.equal(x1, x2) and x1.min() >= 0 and x1.max() <= 1
    err = (x1 - gt).abs().mean(1, keepdim=True)
    visible, occluded = alpha == 0, alpha == 1
    assert err[occluded].mean() > 2 * err[visible].mean() > 0
    assert not torch.equal(x1, degrade_like_fbdd(gt, alpha, "ban", torch.Generator().manual_seed(4)))


def test_ban_loss_is_mse_plus_weighted_haar():
    module = HFAModule(tiny_net("ban"), layer="ban", haar_weight=0.2, input_mode="degrade", lpips="off")
    g = torch.Generator().manual_seed(2)
    refined, gt, fbdd = (torch.rand(2, 3, 16, 16, generator=g) for _ in range(3))
    losses = module.losses(refined, gt, fbdd)
    mse = ((refined - gt) ** 2).mean()
    haar = haar_highfreq_loss(refined, fbdd, 3)
    torch.testing.assert_close(losses["loss"], mse + 0.2 * haar)
    fan = HFAModule(tiny_net("fan"), layer="foreground", lpips="off")
    torch.testing.assert_close(fan.losses(refined, gt, fbdd)["loss"], mse)
    with pytest.raises(ValueError, match="configured for"):
        HFAModule(tiny_net("foreground"), layer="background")


@pytest.mark.parametrize("layer", ["foreground", "background"])
def test_fan_and_ban_overfit_one_batch(layer):
    torch.manual_seed(0)
    module = HFAModule(tiny_net(layer), layer=layer, input_mode="degrade", lpips="off")
    b = batch_of(2, size=16)
    fbdd = module.fbdd_layer(b, "val")  # fixed inputs
    opt = torch.optim.Adam(module.parameters(), lr=5e-3)
    first = None
    for _ in range(40):
        loss = module.losses(module(b["composite"], b["alpha"], fbdd), b[layer], fbdd)["mse"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.35 * first, (first, loss.item())  # measured ~0.22 (FAN), ~0.12 (BAN)


def test_refine_with_a_low_precision_net_still_copies_exactly():
    b = batch_of(1, size=16)
    net = tiny_net("foreground", residual=False).to(torch.bfloat16)
    out = refine(net, b["composite"], b["alpha"], b["foreground"])
    assert out.dtype == torch.float32
    known = (b["alpha"] >= 1 - COPY_THRESHOLD).expand_as(out)
    assert known.any() and torch.equal(out[known], b["composite"][known])
