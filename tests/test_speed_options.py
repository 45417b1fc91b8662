"""Speed options of FBDD training (off by default): torch.compile, channels-last, 8-bit AdamW."""

import sys
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from layeringdiff.errors import ConfigError
from layeringdiff.training.speed import adamw_8bit


def _model(compose_config, tmp_path, *overrides):
    cfg = compose_config("train", tmp_path, ["experiment=fbdd_smoke", *overrides], resolve=True)
    return cfg, instantiate(cfg.model)


def _batch(size=64):
    g = torch.Generator().manual_seed(0)
    return {
        "composite": torch.rand(2, 3, size, size, generator=g),
        "foreground": torch.rand(2, 3, size, size, generator=g),
        "alpha": torch.rand(2, 1, size, size, generator=g),
    }


def test_options_are_off_by_default(compose_config, tmp_path):
    cfg, model = _model(compose_config, tmp_path)
    assert cfg.model.compile_unet is False and cfg.model.channels_last is False
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW"
    assert model.fbdd.unet._compiled_call_impl is None
    assert model.fbdd.unet.conv_in.weight.is_contiguous()


def test_channels_last_step_matches_the_default(compose_config, tmp_path):
    _, plain = _model(compose_config, tmp_path)
    _, fast = _model(compose_config, tmp_path, "model.channels_last=true")
    weight = fast.fbdd.unet.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    losses = []
    for model in (plain, fast):
        loss = model.loss(_batch())
        loss.backward()
        losses.append(loss.detach())
    assert torch.isfinite(losses[1]) and torch.allclose(losses[0], losses[1], rtol=1e-4, atol=1e-6)
    g0, g1 = plain.fbdd.unet.conv_in.weight.grad, fast.fbdd.unet.conv_in.weight.grad
    assert torch.allclose(g0, g1, rtol=1e-3, atol=1e-6)


def test_compile_option_compiles_the_unet_in_place(compose_config, tmp_path):
    cfg, model = _model(compose_config, tmp_path, "model.compile_unet=true")
    unet = model.fbdd.unet
    assert unet._compiled_call_impl is not None  # nn.Module.compile: same module, same names
    assert all(not k.startswith("_orig_mod") for k in model.state_dict())
    with pytest.raises(ConfigError, match="compile_unet"):
        from layeringdiff.training.speed import apply_speed_options

        apply_speed_options(unet, compile_unet="yes")


@pytest.mark.slow
def test_compiled_step_matches_eager(compose_config, tmp_path):  # inductor on CPU: minutes
    _, plain = _model(compose_config, tmp_path)
    _, compiled = _model(compose_config, tmp_path, "model.compile_unet=true")
    a, b = plain.loss(_batch()), compiled.loss(_batch())
    b.backward()
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)


def test_8bit_adamw_is_a_one_line_error_on_cpu(compose_config, tmp_path):
    target = "model.optimizer._target_=layeringdiff.training.speed.adamw_8bit"
    _, model = _model(compose_config, tmp_path, target)
    with pytest.raises(ConfigError, match="CUDA GPUs only; the parameters are on cpu") as err:
        model.configure_optimizers()
    assert "\n" not in str(err.value)


def test_8bit_adamw_without_bitsandbytes_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as when not installed
    cuda_param = SimpleNamespace(device=torch.device("cuda", 0))
    with pytest.raises(ConfigError, match="needs bitsandbytes"):
        adamw_8bit([cuda_param], lr=1e-5)
