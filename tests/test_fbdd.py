"""FBDD model: widening, alpha folding, v target, overfitting, save/load, seeded sampling, bad input."""

import copy
import shutil

import pytest
import torch
from diffusers import UNet2DConditionModel

from layeringdiff.compositing import shuffle_alpha
from layeringdiff.networks.fbdd import FBDD, FBDDInputError, vae_factor, widen_conv_in
from layeringdiff.tiny import sd2
from layeringdiff.training.fbdd_module import FBDDModule
from layeringdiff.weights import MissingWeightsError


def inputs(seed=0, b=2, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g), torch.rand(b, 1, size, size, generator=g)


def test_widen_zero_init_equals_original_fed_zero_mask(repo):
    original = UNet2DConditionModel.from_pretrained(repo, subfolder="unet").eval()
    widened = widen_conv_in(copy.deepcopy(original), in_channels=24, alpha_init="zero")
    assert widened.config.in_channels == 24 and widened.conv_in.weight.shape[1] == 24
    g = torch.Generator().manual_seed(1)
    noisy, image_latent = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    alpha = torch.rand(2, 16, 8, 8, generator=g)  # must not matter with zero init
    context = torch.randn(2, 77, 32, generator=g)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        # SD2 inpainting input order (StableDiffusionInpaintPipeline): [noisy | mask | masked-image latent]
        ref = original(torch.cat([noisy, torch.zeros(2, 1, 8, 8), image_latent], 1), t, context).sample
        out = widened(torch.cat([noisy, image_latent, alpha], 1), t, context).sample
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_widen_mask_mean_constant_alpha_equals_original_fed_that_mask(repo):
    original = UNet2DConditionModel.from_pretrained(repo, subfolder="unet").eval()
    widened = widen_conv_in(copy.deepcopy(original), in_channels=24, alpha_init="mask_mean")
    g = torch.Generator().manual_seed(2)
    noisy, image_latent = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    mask = (torch.rand(1, 1, 8, 8, generator=g) > 0.5).float()
    context = torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        ref = original(torch.cat([noisy, mask, image_latent], 1), 500, context).sample
        out = widened(torch.cat([noisy, image_latent, mask.expand(1, 16, 8, 8)], 1), 500, context).sample
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_widened_unet_saves_and_loads_with_its_channel_count(repo, tmp_path):
    unet = widen_conv_in(UNet2DConditionModel.from_pretrained(repo, subfolder="unet"), 24, "mask_mean")
    unet.save_pretrained(tmp_path / "unet")
    loaded = UNet2DConditionModel.from_pretrained(tmp_path / "unet")
    assert loaded.config.in_channels == 24
    torch.testing.assert_close(loaded.conv_in.weight, unet.conv_in.weight, atol=0, rtol=0)


def test_widen_rejects_bad_channel_counts(repo):
    unet = UNet2DConditionModel.from_pretrained(repo, subfolder="unet")
    with pytest.raises(FBDDInputError, match="no alpha channels"):
        widen_conv_in(unet, in_channels=8)
    widen_conv_in(unet, in_channels=24)
    with pytest.raises(FBDDInputError, match="9 input channels"):
        widen_conv_in(unet, in_channels=72)  # already widened


def test_vae_factor_and_channels_derived_from_config(fbdd):
    assert vae_factor({"block_out_channels": [128, 256, 512, 512]}) == 8  # SD2: 4 + 4 + 64 = 72
    assert fbdd.vae_factor == 4 and fbdd.unet.config.in_channels == 4 + 4 + 16


def test_alpha_unshuffle_shape_and_inverse(fbdd):
    _, alpha = inputs(size=32)
    folded = fbdd.fold_alpha(alpha)
    f = fbdd.vae_factor
    assert folded.shape == (2, f * f, 32 // f, 32 // f)
    # channel i*f + j holds pixel (y*f + i, x*f + j): checked against plain slicing
    for i in range(f):
        for j in range(f):
            torch.testing.assert_close(folded[:, i * f + j], alpha[:, 0, i::f, j::f], atol=0, rtol=0)
    torch.testing.assert_close(shuffle_alpha(folded, f), alpha, atol=0, rtol=0)


def test_v_target_equals_scheduler_velocity(repo, null_cache, monkeypatch):
    module = FBDDModule(str(repo), null_prompt_cache=str(null_cache))
    sched = module.fbdd.noise_scheduler
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 499, 999])
    abar = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    v_hand = abar.sqrt() * noise - (1 - abar).sqrt() * x0  # Salimans & Ho (2022)
    torch.testing.assert_close(sched.get_velocity(x0, noise, t), v_hand)
    comp, folded = torch.randn(3, 4, 8, 8), torch.rand(3, 16, 8, 8)
    monkeypatch.setattr(module.fbdd, "forward", lambda *a: v_hand)
    assert module.v_loss(x0, comp, folded, noise, t).item() < 1e-10
    monkeypatch.setattr(module.fbdd, "forward", lambda *a: torch.zeros_like(v_hand))
    torch.testing.assert_close(module.v_loss(x0, comp, folded, noise, t), (v_hand**2).mean())


def cached_batch(fbdd, seed=0):
    composite, alpha = inputs(seed)
    foreground = torch.rand_like(composite)
    with torch.no_grad():
        lat = {
            k: fbdd.encode(x) / fbdd.scaling_factor for k, x in (("composite", composite), ("fg", foreground))
        }
    return {
        "composite": composite,
        "alpha": alpha,
        "foreground": foreground,
        "latent_composite": lat["composite"],
        "latent_foreground": lat["fg"],
    }


def test_latent_cache_skips_vae_encoder_and_matches_encoding(repo, null_cache, monkeypatch):
    module = FBDDModule(str(repo), null_prompt_cache=str(null_cache))
    batch = cached_batch(module.fbdd)
    plain = {k: v for k, v in batch.items() if not k.startswith("latent_")}
    with torch.no_grad():
        loss_encoded = module.loss(plain)

        def no_encoder(*a, **k):
            raise AssertionError("VAE encoder ran although latents were cached")

        monkeypatch.setattr(module.fbdd.vae, "encode", no_encoder)
        loss_cached = module.loss(batch)
    torch.testing.assert_close(loss_cached, loss_encoded, atol=1e-6, rtol=1e-5)
    batch["latent_foreground"] = batch["latent_foreground"][..., :4]
    with pytest.raises(FBDDInputError, match="stale latent cache"):
        module.loss(batch)


def test_tiny_model_overfits_one_batch(repo, null_cache):
    torch.manual_seed(0)
    module = FBDDModule(str(repo), null_prompt_cache=str(null_cache))
    batch = {k: v[:1] for k, v in cached_batch(module.fbdd).items()}
    opt = torch.optim.Adam(module.fbdd.unet.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):  # without a trainer global_step stays 0: the same noise and t every step
        loss = module.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, f"loss {losses[0]:.4f} -> {losses[-1]:.4f} fell less than 10x"


def test_save_load_gives_identical_outputs(fbdd, tmp_path):
    composite, alpha = inputs()
    ref = fbdd.decompose(composite, alpha, 2, generator=torch.Generator().manual_seed(0))
    for include_vae in (True, False):
        out_dir = fbdd.save_pretrained(tmp_path / f"export_{include_vae}", include_vae=include_vae)
        assert (out_dir / "vae").is_dir() == include_vae
        loaded = FBDD.from_pretrained(out_dir)
        assert loaded.layer == "foreground" and loaded.unet.config.in_channels == 24
        torch.testing.assert_close(loaded.null_prompt_embeds, fbdd.null_prompt_embeds, atol=0, rtol=0)
        out = loaded.decompose(composite, alpha, 2, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, ref, atol=0, rtol=0)


@pytest.mark.parametrize("scheduler", ["ddim", "dpmsolver++"])
def test_seeded_sampling_is_deterministic(fbdd, scheduler):
    composite, alpha = inputs()
    runs = [
        fbdd.decompose(composite, alpha, 2, generator=torch.Generator().manual_seed(s), scheduler=scheduler)
        for s in (7, 7, 8)
    ]
    assert runs[0].shape == (2, 3, 32, 32) and 0 <= runs[0].min() and runs[0].max() <= 1
    torch.testing.assert_close(runs[0], runs[1], atol=0, rtol=0)
    assert not torch.equal(runs[0], runs[2])


def test_sampling_progress_bar_counts_the_steps(fbdd, capsys):
    composite, alpha = inputs(b=1)
    quiet = fbdd.decompose(composite, alpha, 3, generator=torch.Generator().manual_seed(0))
    assert "FBDD foreground" not in capsys.readouterr().err
    shown = fbdd.decompose(composite, alpha, 3, generator=torch.Generator().manual_seed(0), progress=True)
    err = capsys.readouterr().err
    assert "FBDD foreground" in err and "/3 " in err  # a bar over the 3 sampler steps
    torch.testing.assert_close(quiet, shown, atol=0, rtol=0)


def test_null_prompt_cached_so_text_encoder_is_not_needed(repo, null_cache, tmp_path):
    FBDD.from_sd2_inpainting(repo, "background", null_prompt_cache=null_cache)  # fills the cache
    partial = tmp_path / "sd2"
    shutil.copytree(repo, partial)
    shutil.rmtree(partial / "text_encoder")
    with pytest.raises(MissingWeightsError, match="text_encoder"):
        FBDD.from_sd2_inpainting(partial, "background", null_prompt_cache=tmp_path / "empty_cache")
    cache = tmp_path / "cache"
    cache.mkdir()
    src = next(null_cache.glob("*.safetensors"))
    # a cache written for another repo path is not reused
    shutil.copy(src, cache / "sd2.safetensors")
    with pytest.raises(MissingWeightsError):
        FBDD.from_sd2_inpainting(partial, "background", null_prompt_cache=cache)
    # the same embedding cached for this repo: no text encoder or tokenizer is loaded
    from safetensors.torch import load_file, save_file

    embeds = load_file(str(src))["prompt_embeds"]
    save_file(
        {"prompt_embeds": embeds}, cache / "sd2.safetensors", metadata={"pretrained": str(partial.resolve())}
    )
    shutil.rmtree(partial / "tokenizer")
    model = FBDD.from_sd2_inpainting(partial, "background", null_prompt_cache=cache)
    torch.testing.assert_close(model.null_prompt_embeds, embeds, atol=0, rtol=0)


def test_missing_and_partial_weights_fail_with_one_line(repo, tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        FBDDModule(str(tmp_path / "nowhere"))
    assert "\n" not in str(e.value) and "nowhere" in str(e.value)
    partial = tmp_path / "partial"
    shutil.copytree(repo, partial)
    (partial / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MissingWeightsError) as e:
        FBDDModule(str(partial))
    assert "\n" not in str(e.value) and "unet" in str(e.value)
    with pytest.raises(MissingWeightsError, match="FBDD export"):
        FBDD.from_pretrained(tmp_path / "partial" / "unet")


def test_wrong_channel_counts_and_shapes_fail_before_work(repo, fbdd, null_cache):
    with pytest.raises(FBDDInputError, match="in_channels=72") as e:
        FBDDModule(str(repo), in_channels=72, null_prompt_cache=str(null_cache))
    assert "\n" not in str(e.value)
    composite, alpha = inputs()
    bad = [
        (composite[:, :1], alpha, "composite must be"),
        (composite, alpha.expand(-1, 3, -1, -1), "alpha must be"),
        (composite, alpha[..., :16, :16], "does not match"),
        (composite[..., :12, :12], alpha[..., :12, :12], "multiple of 8"),
    ]
    for c, a, msg in bad:
        with pytest.raises(FBDDInputError, match=msg):
            fbdd.decompose(c, a, 2)
    with pytest.raises(FBDDInputError, match="layer="):
        FBDD.from_sd2_inpainting(repo, "middle", null_prompt_cache=null_cache)


def test_min_snr_weights_match_hand_formula(repo, null_cache):
    from layeringdiff.training.fbdd_module import min_snr_weights

    module = FBDDModule(str(repo), null_prompt_cache=str(null_cache), min_snr_gamma=5.0)
    abar = module.fbdd.noise_scheduler.alphas_cumprod
    t = torch.tensor([0, 300, 999])
    snr = abar[t] / (1 - abar[t])
    expected = torch.minimum(snr, torch.tensor(5.0)) / (snr + 1)
    torch.testing.assert_close(min_snr_weights(abar, t, 5.0), expected)
    assert expected[0] < 1 and expected[2] == pytest.approx(snr[2] / (snr[2] + 1))


def test_ema_weights_are_used_for_sampling_and_export(repo, null_cache, tmp_path):
    module = FBDDModule(str(repo), null_prompt_cache=str(null_cache), ema_decay=0.5)
    ema_unet = module.sampling_model().unet
    assert ema_unet is module.ema.module and ema_unet is not module.fbdd.unet
    bias = module.fbdd.unet.conv_out.bias.detach().clone()
    for _ in range(2):  # torch's first EMA update copies the weights, the second averages
        with torch.no_grad():
            module.fbdd.unet.conv_out.bias.add_(1.0)
        module.ema.update_parameters(module.fbdd.unet)
    torch.testing.assert_close(ema_unet.conv_out.bias, bias + 1.5)  # 0.5 * (b + 1) + 0.5 * (b + 2)
    loaded = FBDD.from_pretrained(module.export(tmp_path / "export"))
    torch.testing.assert_close(loaded.unet.conv_out.bias, ema_unet.conv_out.bias, atol=0, rtol=0)
    assert not torch.equal(loaded.unet.conv_out.bias, module.fbdd.unet.conv_out.bias)


def test_validation_grid_shows_both_layers_with_a_companion(repo, null_cache, fbdd, tmp_path):
    from layeringdiff.training.fbdd_module import layer_grid
    from layeringdiff.training.grids import HEADER_HEIGHT

    companion = fbdd.save_pretrained(tmp_path / "fg_export")  # a foreground model
    module = FBDDModule(
        str(repo),
        layer="background",
        null_prompt_cache=str(null_cache),
        val_companion=str(companion),
        val_steps=2,
    )
    composite, alpha = inputs(size=32)
    batch = {
        "composite": composite,
        "alpha": alpha,
        "foreground": composite.flip(1),
        "background": composite.flip(2),
    }
    module.on_validation_epoch_start()
    module.validation_step(batch, 0)
    row = module._val_images[0]
    expected_fg = fbdd.decompose(composite, alpha, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(row["foreground_hat"], expected_fg, atol=0, rtol=0)
    grid = layer_grid(module._val_images)  # header, 2 rows x 6 tiles of 32 px, 2 px padding
    top = HEADER_HEIGHT + 2
    assert grid.shape == (3, HEADER_HEIGHT + 2 + 2 * 34, 2 + 6 * 34)
    torch.testing.assert_close(grid[:, top : top + 32, 2 + 3 * 34 : 34 + 3 * 34], row["background_hat"][0])
    with pytest.raises(FBDDInputError, match="other layer"):
        FBDDModule(
            str(repo), layer="foreground", null_prompt_cache=str(null_cache), val_companion=str(companion)
        )


def test_export_and_tiny_repo_are_readable_and_leave_the_rng_alone(fbdd, tmp_path):
    import os
    import stat

    from diffusers import StableDiffusionInpaintPipeline

    umask = os.umask(0o022)
    os.umask(umask)
    out = fbdd.save_pretrained(tmp_path / "export")
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    repo = sd2.build(tmp_path / "sd2", seed=0)
    torch.testing.assert_close(torch.rand(3), expected, atol=0, rtol=0)  # build did not reseed torch
    assert stat.S_IMODE(repo.stat().st_mode) == 0o777 & ~umask
    pipe = StableDiffusionInpaintPipeline.from_pretrained(repo, safety_checker=None, feature_extractor=None)
    assert pipe.unet.config.in_channels == 9
