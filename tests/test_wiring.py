"""The inputs the method's networks actually see, against oracles built here from first principles.

A forward pre-hook on the FBDD UNet (and on HFA's first convolution) records what training and
sampling feed it; the test rebuilds the expected input slot by slot from the VAE itself
(``encode(2x - 1).mean x scaling_factor``), ``torch.nn.functional.pixel_unshuffle`` and the
closed-form forward process ``sqrt(abar_t) z + sqrt(1 - abar_t) eps`` (Ho et al., 2020).
Swapping the noisy / composite slots, zeroing the folded alpha or feeding pure noise instead of
x_t each fail here.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from layeringdiff.networks.fbdd import make_scheduler
from layeringdiff.networks.hfa import COPY_THRESHOLD, HFANet, refine
from layeringdiff.training.fbdd_module import FBDDModule
from layeringdiff.training.hfa_module import HFAModule

EXACT = dict(atol=1e-5, rtol=1e-5)


def images(seed: int, b: int = 2, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(b, 1, size, size, generator=g)
    alpha[:, :, :8] = 1.0  # exact 1 and 0 regions: the copy-through must show in the HFA checks
    alpha[:, :, -8:] = 0.0
    fg, bg = torch.rand(b, 3, size, size, generator=g), torch.rand(b, 3, size, size, generator=g)
    return {"foreground": fg, "background": bg, "alpha": alpha, "composite": alpha * fg + (1 - alpha) * bg}


def vae_latent(vae, x: torch.Tensor) -> torch.Tensor:
    """Scaled posterior mean of the AutoencoderKL, called directly (not through FBDD.encode)."""
    with torch.no_grad():
        return vae.encode(x * 2 - 1).latent_dist.mean * vae.config.scaling_factor


def spy(module: torch.nn.Module, records: list):
    """Record each call's positional inputs, then its keyword inputs (cloned)."""

    def hook(mod, args, kwargs):
        keep = [a.detach().clone() if torch.is_tensor(a) else a for a in args]
        records.append(keep + [{k: v.detach().clone() for k, v in kwargs.items() if torch.is_tensor(v)}])

    return module.register_forward_pre_hook(hook, with_kwargs=True)


class Draws:
    """Wraps torch.randn / torch.randint to record what the code under test draws."""

    def __init__(self, monkeypatch):
        self.randn, self.randint = [], []
        real_randn, real_randint = torch.randn, torch.randint

        def randn(*a, **k):
            out = real_randn(*a, **k)
            self.randn.append(out.clone())
            return out

        def randint(*a, **k):
            out = real_randint(*a, **k)
            self.randint.append(out.clone())
            return out

        monkeypatch.setattr(torch, "randn", randn)
        monkeypatch.setattr(torch, "randint", randint)


@pytest.mark.parametrize("layer", ["foreground", "background"])
def test_training_loss_feeds_the_unet_noised_layer_composite_and_folded_alpha(
    repo, null_cache, monkeypatch, layer
):
    module = FBDDModule(str(repo), layer=layer, null_prompt_cache=str(null_cache))
    fbdd, batch = module.fbdd, images(0)
    inputs, outputs = [], []
    spy(fbdd.unet, inputs)
    fbdd.unet.register_forward_hook(lambda m, a, out: outputs.append(out.sample.detach().clone()))
    draws = Draws(monkeypatch)
    loss = module.loss(batch, batch_idx=1)
    assert len(inputs) == 1 and len(draws.randn) == 1 and len(draws.randint) == 1
    x, t = inputs[0][0], inputs[0][1]
    eps, t_drawn = draws.randn[0], draws.randint[0]
    torch.testing.assert_close(t, t_drawn, atol=0, rtol=0)
    assert len(set(t.tolist())) == 2, "each sample draws its own timestep"

    z_layer = vae_latent(fbdd.vae, batch[layer])
    z_comp = vae_latent(fbdd.vae, batch["composite"])
    abar = fbdd.noise_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = abar.sqrt() * z_layer + (1 - abar).sqrt() * eps
    c, f = z_layer.shape[1], fbdd.vae_factor
    assert x.shape[1] == 2 * c + f * f
    torch.testing.assert_close(x[:, :c], x_t, **EXACT)
    torch.testing.assert_close(x[:, c : 2 * c], z_comp, **EXACT)
    torch.testing.assert_close(x[:, 2 * c :], F.pixel_unshuffle(batch["alpha"], f), atol=0, rtol=0)
    # ... and the loss is the MSE of the UNet's output to v = sqrt(abar) eps - sqrt(1 - abar) z
    v = abar.sqrt() * eps - (1 - abar).sqrt() * z_layer
    torch.testing.assert_close(loss, ((outputs[0] - v) ** 2).mean(), **EXACT)
    # the stored null-prompt embedding conditions the UNet
    context = inputs[0][-1]["encoder_hidden_states"]
    torch.testing.assert_close(context, fbdd.null_prompt_embeds.expand(2, -1, -1), atol=0, rtol=0)


def test_training_loss_draws_differ_between_steps_and_batches(repo, null_cache, monkeypatch):
    module = FBDDModule(str(repo), null_prompt_cache=str(null_cache))
    draws = Draws(monkeypatch)
    with torch.no_grad():
        module.loss(images(0), batch_idx=0)
        module.loss(images(0), batch_idx=1)
    assert not torch.equal(draws.randn[0], draws.randn[1])


@pytest.mark.parametrize("sampler,steps", [("ddim", 3), ("euler", 3)])
def test_sampling_feeds_the_unet_scheduler_latents_composite_and_folded_alpha(fbdd, sampler, steps):
    batch = images(1)
    inputs, outputs = [], []
    handles = [
        spy(fbdd.unet, inputs),
        fbdd.unet.register_forward_hook(lambda m, a, out: outputs.append(out.sample.detach().clone())),
    ]
    try:
        layer = fbdd.decompose(
            batch["composite"],
            batch["alpha"],
            steps,
            generator=torch.Generator().manual_seed(7),
            scheduler=sampler,
        )
    finally:
        for h in handles:
            h.remove()
    assert len(inputs) == steps
    # replay: a fresh scheduler of the same kind, stepped with the UNet outputs seen by the spy
    sched = make_scheduler(sampler, dict(fbdd.noise_scheduler.config))
    sched.set_timesteps(steps)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(7)) * sched.init_noise_sigma
    z_comp = vae_latent(fbdd.vae, batch["composite"])
    folded = F.pixel_unshuffle(batch["alpha"], fbdd.vae_factor)
    for k, t in enumerate(sched.timesteps):
        x, t_seen = inputs[k][0], inputs[k][1]
        assert float(t_seen) == float(t), f"step {k}: UNet timestep {t_seen} != scheduler's {t}"
        torch.testing.assert_close(x[:, :4], sched.scale_model_input(latents, t), **EXACT)
        torch.testing.assert_close(x[:, 4:8], z_comp, **EXACT)
        torch.testing.assert_close(x[:, 8:], folded, atol=0, rtol=0)
        context = inputs[k][-1]["encoder_hidden_states"]
        torch.testing.assert_close(context, fbdd.null_prompt_embeds.expand(2, -1, -1), atol=0, rtol=0)
        latents = sched.step(outputs[k], t, latents, return_dict=False)[0]
    with torch.no_grad():
        decoded = fbdd.vae.decode(latents / fbdd.vae.config.scaling_factor).sample
    torch.testing.assert_close(layer, (decoded / 2 + 0.5).clamp(0, 1), **EXACT)


def hfa_net(layer: str) -> HFANet:
    torch.manual_seed(3)
    net = HFANet(layer, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, residual=True)
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)  # not the identity: the output depends on the input
    return net


@pytest.mark.parametrize("layer", ["foreground", "background"])
def test_hfa_training_and_refine_feed_composite_alpha_and_fbdd_layer(layer):
    net = hfa_net(layer)
    module = HFAModule(copy.deepcopy(net), layer=layer, input_mode="sidecar", lpips="off")
    batch = images(2)
    fbdd_layer = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    batch[f"fbdd_{layer}"] = fbdd_layer
    expected = torch.cat([batch["composite"], batch["alpha"], fbdd_layer], dim=1) * 2 - 1

    seen, outputs = [], []
    spy(module.net.conv_in, seen)
    module.net.register_forward_hook(lambda m, a, out: outputs.append(out.detach().clone()))
    loss = module.training_step(batch, 0)
    torch.testing.assert_close(seen[0][0], expected, atol=0, rtol=0)
    # the loss sees the copy-through: F := C where alpha == 1, B := C where alpha == 0
    known = (
        batch["alpha"] >= 1 - COPY_THRESHOLD if layer == "foreground" else batch["alpha"] <= COPY_THRESHOLD
    )
    refined = torch.where(known, batch["composite"], outputs[0])
    mse = ((refined - batch[layer]) ** 2).mean()
    if layer == "foreground":
        torch.testing.assert_close(loss, mse, **EXACT)
    else:
        assert loss.item() > mse.item()  # + haar_weight * L_H(B, B_hat), checked in test_hfa.py

    seen.clear()
    spy(net.conv_in, seen)
    out = refine(net, batch["composite"], batch["alpha"], fbdd_layer)
    torch.testing.assert_close(seen[0][0], expected, atol=0, rtol=0)
    with torch.no_grad():
        raw = net(batch["composite"], batch["alpha"], fbdd_layer).clamp(0, 1)
    torch.testing.assert_close(out, torch.where(known, batch["composite"], raw), atol=0, rtol=0)


def test_layeringdiff_without_fan_ban_still_copies_the_visible_pixels(fbdd):
    from layeringdiff.pipeline.layering import LayeringDiffLayering

    batch = images(4, b=1)
    comp, alpha = batch["composite"][0], batch["alpha"][0]
    fg, bg = LayeringDiffLayering(fbdd, fbdd, fan=None, ban=None, num_inference_steps=2)(
        comp, alpha, torch.Generator().manual_seed(5)
    )
    gen = torch.Generator().manual_seed(5)  # the backend samples F first, then B, from one generator
    coarse_f = fbdd.decompose(comp[None], alpha[None], 2, generator=gen)[0]
    coarse_b = fbdd.decompose(comp[None], alpha[None], 2, generator=gen)[0]
    # F := C where alpha == 1, B := C where alpha == 0 (within half an 8-bit step, COPY_THRESHOLD)
    torch.testing.assert_close(fg, torch.where(alpha >= 1 - COPY_THRESHOLD, comp, coarse_f), atol=0, rtol=0)
    torch.testing.assert_close(bg, torch.where(alpha <= COPY_THRESHOLD, comp, coarse_b), atol=0, rtol=0)
    assert not torch.equal(coarse_f[:, alpha[0] == 1], comp[:, alpha[0] == 1])  # the copy did something
