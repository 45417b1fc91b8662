"""FBDD sampling loop and precision: an oracle UNet recovers the target latent with every sampler;
bf16 autocast / bf16 UNets keep the noise-schedule arithmetic in float32."""

import copy

import pytest
import torch

from layeringdiff.networks.fbdd import FBDD, FBDDInputError, make_scheduler
from layeringdiff.training.fbdd_module import FBDDModule


@pytest.mark.parametrize(
    "scheduler,steps,tol", [("ddim", 4, 1e-4), ("dpmsolver++", 4, 1e-3), ("euler", 8, 1e-3)]
)
def test_oracle_v_recovers_the_target_latent(fbdd, monkeypatch, scheduler, steps, tol):
    # A UNet that predicts the exact v for a known x0 must sample x0: this checks set_timesteps,
    # init_noise_sigma (Euler starts at sigma_max, not 1) and scale_model_input (Euler's input is the
    # VP x_t only after scaling) together with the v parameterisation.
    abar_all = fbdd.noise_scheduler.alphas_cumprod
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))

    def oracle(x_t, t, cond, folded):
        abar = abar_all[int(t)]
        eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0

    monkeypatch.setattr(fbdd, "forward", oracle)
    monkeypatch.setattr(fbdd, "encode", lambda images: torch.zeros(images.shape[0], 4, 8, 8))
    monkeypatch.setattr(fbdd, "decode", lambda latents: latents)
    composite, alpha = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    out = fbdd.decompose(
        composite, alpha, steps, generator=torch.Generator().manual_seed(0), scheduler=scheduler
    )
    expected = x0
    if scheduler == "ddim":
        # Deterministic DDIM keeps the first step's implied noise and (set_alpha_to_one=False, as in
        # SD) ends at t=0, not at pure x0.
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        first = abar_all[1000 - 1000 // steps + 1]  # leading spacing, steps_offset=1: 751 for 4 steps
        eps = (noise - first.sqrt() * x0) / (1 - first).sqrt()
        expected = abar_all[0].sqrt() * x0 + (1 - abar_all[0]).sqrt() * eps
    torch.testing.assert_close(out, expected, atol=tol, rtol=tol)


def test_training_latents_are_float32_under_bf16_autocast(repo, null_cache):
    # The scheduler casts alphas_cumprod to the latents' dtype; bf16 latents would make
    # sqrt(1 - abar_0) exactly 0 (no noise at small t) and a wrong v target.
    module = FBDDModule(str(repo), null_prompt_cache=str(null_cache))
    g = torch.Generator().manual_seed(0)
    batch = {
        "composite": torch.rand(2, 3, 32, 32, generator=g),
        "foreground": torch.rand(2, 3, 32, 32, generator=g),
        "alpha": torch.rand(2, 1, 32, 32, generator=g),
    }
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        comp, target = module.latents(batch)
        assert comp.dtype == target.dtype == torch.float32
        noise = torch.randn(target.shape, generator=g)
        t = torch.zeros(2, dtype=torch.long)
        noisy = module.fbdd.noise_scheduler.add_noise(target, noise, t)
        assert not torch.equal(noisy, target)
        loss = module.loss(batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_bf16_unet_samples_close_to_float32(fbdd):
    g = torch.Generator().manual_seed(1)
    composite, alpha = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 1, 32, 32, generator=g)
    ref = fbdd.decompose(composite, alpha, 2, generator=torch.Generator().manual_seed(0))
    half = copy.deepcopy(fbdd)
    half.unet.to(torch.bfloat16)
    out = half.decompose(composite, alpha, 2, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32
    assert (out - ref).abs().mean() < 0.05


def test_resume_from_the_other_layers_checkpoint_is_refused(repo, null_cache):
    module = FBDDModule(str(repo), layer="background", null_prompt_cache=str(null_cache))
    with pytest.raises(FBDDInputError, match="trains the foreground model but model.layer=background"):
        module.on_load_checkpoint({"hyper_parameters": {"layer": "foreground"}, "state_dict": {}})
    checkpoint = {"hyper_parameters": {"layer": "background"}, "state_dict": {}}
    module.on_load_checkpoint(checkpoint)
    assert any(k.startswith("fbdd.vae.") for k in checkpoint["state_dict"])  # the VAE is put back


def test_samplers_never_clip_latents_even_if_the_repo_config_is_silent(fbdd):
    config = {k: v for k, v in fbdd.noise_scheduler.config.items() if k != "clip_sample"}
    model = FBDD(fbdd.unet, fbdd.vae, config, fbdd.null_prompt_embeds, "foreground")
    for name in ("ddim", "ddpm"):
        assert make_scheduler(name, dict(model.noise_scheduler.config)).config.clip_sample is False
