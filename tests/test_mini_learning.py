"""FBDD learns to decompose: a shortened LayeringDiff-mini run (docs/mini.md) in the default suite.

A small FBDD (the real ``FBDD`` class, ``FBDDModule.loss``, v-prediction, null prompt, DDIM
``decompose``) is trained from scratch for a few hundred steps on 32 px procedural composites. On
held-out composites its decomposition must be clearly closer to the true layer than both the
untrained model's and the composite itself (the `copy` baseline, F = B = C).

The frozen autoencoder here is an exact one, pixel (un)shuffle by 4 (48 latent channels): the test
is about what FBDD learns, and a random or briefly trained VAE would blur the comparison. Everything
FBDD does with it is the real code path: ``encode``/``decode`` with the scaling factor, alpha folded
by the factor read from the VAE config, the UNet input [x_t | composite latent | folded alpha].

Deliberate breaks it catches (``experiments/learning_breaks.py`` applies each and runs this file and
``tests/test_wiring.py``; the record is in experiments/RESULTS.md): the folded alpha replaced with
zeros (``test_trained_fbdd_reads_the_alpha`` goes red), pure noise fed to the UNet instead of x_t in
the training loss (``test_trained_fbdd_reads_x_t``), the noisy-latent and composite-latent slots
swapped in the loss only (the first two tests). A swap inside ``FBDD.forward`` (training and
sampling alike) is a consistent channel permutation that a model trained from scratch learns as
well; the slot-by-slot wiring tests catch that one. About 60 s on one core.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.mini.repo import SCHEDULES
from layeringdiff.networks.fbdd import FBDD
from layeringdiff.tiny.sd2 import SCHEDULER_CONFIG
from layeringdiff.training.fbdd_module import FBDDModule

LAYER = "foreground"
SIZE, FACTOR = 32, 4
LATENT = 3 * FACTOR * FACTOR
STEPS, BATCH, LR = 400, 16, 2e-3
NUM_TRAIN, NUM_VAL = 1024, 32
SAMPLER_STEPS = 1  # one DDIM step from pure noise: the model's estimate of the layer itself
# SD2's noise schedule with zero terminal SNR and trailing timesteps (Lin et al. 2024, "Common
# diffusion noise schedules and sample steps are flawed"; scheduler config options of diffusers).
# With SD2's own schedule, x_t at t = 999 still carries the layer's low frequencies (here 16 pixels
# share a latent position, so the leak is strong): a model trained a few hundred steps reads them
# from x_t instead of from the composite, and sampling from pure noise then goes wrong.
SCHEDULE = {**SCHEDULER_CONFIG, **SCHEDULES["zero_snr"]}  # the mini base repo's default


class _Config(dict):
    """A config readable as ``config["key"]`` and ``config.key``, as diffusers' configs are."""

    __getattr__ = dict.__getitem__


class PixelShuffleVAE(nn.Module):
    """An exact autoencoder with the ``AutoencoderKL`` interface FBDD uses: pixel (un)shuffle."""

    def __init__(self, factor: int, scaling_factor: float) -> None:
        super().__init__()
        blocks = [8] * (factor.bit_length())  # vae_factor = 2 ** (len(blocks) - 1)
        self.config = _Config(
            block_out_channels=blocks, latent_channels=3 * factor * factor, scaling_factor=scaling_factor
        )
        self.factor = factor
        self.register_buffer("anchor", torch.zeros(()))

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor.dtype

    def encode(self, x: torch.Tensor):
        z = F.pixel_unshuffle(x, self.factor)
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: z))

    def decode(self, z: torch.Tensor):
        return SimpleNamespace(sample=F.pixel_shuffle(z, self.factor))


def _model(seed: int = 0) -> FBDD:
    from diffusers import UNet2DConditionModel

    vae = PixelShuffleVAE(FACTOR, scaling_factor=2.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=SIZE // FACTOR,
            in_channels=2 * LATENT + FACTOR * FACTOR,
            out_channels=LATENT,
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
            block_out_channels=[64, 64],
            layers_per_block=1,
            cross_attention_dim=32,
            attention_head_dim=[4, 4],
            norm_num_groups=16,
        )
    return FBDD(unet, vae, SCHEDULE, torch.zeros(1, 77, 32), LAYER)


def _stack(data, n: int) -> dict[str, torch.Tensor]:
    samples = [data[i] for i in range(n)]
    return {k: torch.stack([s[k] for s in samples]) for k in ("composite", LAYER, "alpha")}


@functools.lru_cache(maxsize=1)
def _data() -> tuple[dict, dict]:
    train = _stack(SyntheticLayers(NUM_TRAIN, size=SIZE, split="train", kernel_range=(1, 3)), NUM_TRAIN)
    val = _stack(SyntheticLayers(NUM_VAL, size=SIZE, split="val", kernel_range=(1, 3)), NUM_VAL)
    return train, val


def train_fbdd(fbdd: FBDD, train: dict, steps: int = STEPS) -> FBDD:
    """Plain loop over ``FBDDModule.loss`` (the Lightning training step's loss), fresh noise each step."""
    module = FBDDModule("unused", layer=LAYER, fbdd=fbdd, noise_seed=1)
    opt = torch.optim.AdamW(fbdd.unet.parameters(), lr=LR, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        idx = torch.randint(0, NUM_TRAIN, (BATCH,), generator=g)
        loss = module.loss({k: v[idx] for k, v in train.items()}, batch_idx=step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return fbdd.eval()


def decomposition_error(fbdd: FBDD, val: dict, alpha: torch.Tensor | None = None) -> float:
    """Mean squared error of the DDIM-sampled layer against the true one, pixels in [0, 1]."""
    out = fbdd.decompose(
        val["composite"],
        val["alpha"] if alpha is None else alpha,
        num_inference_steps=SAMPLER_STEPS,
        generator=torch.Generator().manual_seed(0),
    )
    return float(((out - val[LAYER]) ** 2).mean())


@torch.no_grad()
def denoising_error(fbdd: FBDD, val: dict, t: int) -> float:
    """Squared error of the model's x0 estimate from the true layer noised to step ``t`` (pixels)."""
    sched = fbdd.noise_scheduler
    z0 = fbdd.encode(val[LAYER])
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(1))
    steps = torch.full((z0.shape[0],), t)
    x_t = sched.add_noise(z0, noise, steps)
    v = fbdd(x_t, steps, fbdd.encode(val["composite"]), fbdd.fold_alpha(val["alpha"]))
    abar = sched.alphas_cumprod[t]
    x0 = abar.sqrt() * x_t - (1 - abar).sqrt() * v
    return float(((fbdd.decode(x0) - val[LAYER]) ** 2).mean())


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a module fixture runs before conftest's one-thread fixture
    try:
        train, val = _data()
        fbdd = _model()
        untrained = decomposition_error(fbdd.eval(), val)
        fbdd.unet.train()
        return train_fbdd(fbdd, train), val, untrained
    finally:
        torch.set_num_threads(threads)


def test_fbdd_learns_to_decompose(trained):
    fbdd, val, untrained = trained
    copy = float(((val["composite"] - val[LAYER]) ** 2).mean())
    error = decomposition_error(fbdd, val)
    print(f"{LAYER} MSE: trained {error:.4f}, untrained {untrained:.4f}, copy {copy:.4f}")
    assert error < 0.5 * copy, (error, copy)
    assert error < 0.5 * untrained, (error, untrained)


def test_trained_fbdd_reads_the_alpha(trained):
    """The same trained model sampled with the alpha zeroed does clearly worse: it uses the alpha."""
    fbdd, val, _ = trained
    error = decomposition_error(fbdd, val)
    ablated = decomposition_error(fbdd, val, alpha=torch.zeros_like(val["alpha"]))
    print(f"{LAYER} MSE: with alpha {error:.4f}, alpha zeroed at sampling {ablated:.4f}")
    assert ablated > 1.25 * error, (ablated, error)


def test_trained_fbdd_reads_x_t(trained):
    """At t = 500, x_t is 0.49 x layer + 0.87 x noise: the trained estimate must use that signal."""
    fbdd, val, _ = trained
    mid, start = denoising_error(fbdd, val, 500), denoising_error(fbdd, val, 999)
    print(f"{LAYER} MSE of the x0 estimate: from x_500 {mid:.4f}, from x_999 (pure noise) {start:.4f}")
    assert mid < 0.8 * start, (mid, start)
