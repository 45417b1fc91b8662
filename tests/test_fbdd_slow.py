"""Real size, no weights: the SD2-inpainting UNet architecture, widened, one training step at a
64x64 latent (512x512 images) on the CPU. About 9 GiB of memory and tens of seconds: marked slow."""

import pytest
import torch

from layeringdiff.networks.fbdd import FBDD
from layeringdiff.networks.sd2 import SD2_INPAINTING_UNET_CONFIG, SD2_SCHEDULER_CONFIG, SD2_VAE_CONFIG
from layeringdiff.training.fbdd_module import FBDDModule


@pytest.mark.slow
def test_real_sd2_architecture_widened_trains_one_step():
    torch.manual_seed(0)
    fbdd = FBDD.from_config(SD2_INPAINTING_UNET_CONFIG, SD2_VAE_CONFIG, SD2_SCHEDULER_CONFIG)
    assert fbdd.vae_factor == 8 and fbdd.unet.config.in_channels == 72
    assert fbdd.unet.conv_in.weight.shape == (320, 72, 3, 3)
    n_params = sum(p.numel() for p in fbdd.unet.parameters())
    assert 865_000_000 < n_params < 867_000_000  # 865.9M + 181,440 for the 63 extra input channels
    module = FBDDModule("unused", fbdd=fbdd, gradient_checkpointing=True)
    batch = {  # cached latents: the VAE encoder never runs
        "alpha": torch.rand(1, 1, 512, 512),
        "latent_composite": torch.randn(1, 4, 64, 64),
        "latent_foreground": torch.randn(1, 4, 64, 64),
    }
    # SGD keeps no state: the step fits in ~9 GiB (AdamW would add 2 x 3.5 GB of moments).
    opt = torch.optim.SGD(fbdd.unet.parameters(), lr=1e-4)
    before = fbdd.unet.conv_in.weight[:, 8:].detach().clone()
    loss = module.loss(batch)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.count_nonzero(before) == 0  # zero-initialised alpha channels ...
    assert torch.count_nonzero(fbdd.unet.conv_in.weight[:, 8:]) > 0  # ... are trained
