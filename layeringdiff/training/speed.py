"""Speed options of the FBDD trainer, all off by default (docs/scale.md).

- ``model.compile_unet``: ``torch.compile`` the UNet in place (``nn.Module.compile``: parameter
  names, checkpoints and exports are unchanged). ``true`` or a dict of ``torch.compile`` arguments
  (``{mode: max-autotune}``). The first steps are slower while it compiles.
- ``model.channels_last``: UNet weights in channels-last memory format; convolutions then run
  (and hand on their activations) in that format, usually faster on GPUs with tensor cores.
- 8-bit AdamW (bitsandbytes, CUDA only): ``model.optimizer._target_=layeringdiff.training.speed.adamw_8bit``;
  the optimizer's other settings (lr, betas, weight_decay, eps) stay as configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from layeringdiff.errors import ConfigError


def apply_speed_options(
    unet: torch.nn.Module, compile_unet: bool | Mapping = False, channels_last: bool = False
) -> None:
    """Put ``unet`` in channels-last format and/or compile it, in place."""
    if channels_last:
        unet.to(memory_format=torch.channels_last)
    if compile_unet:
        if not isinstance(compile_unet, (bool, Mapping)):
            raise ConfigError(
                f"model.compile_unet must be true, false or a dict of torch.compile arguments, got {compile_unet!r}"
            )
        unet.compile(**(dict(compile_unet) if isinstance(compile_unet, Mapping) else {}))


def adamw_8bit(params: Iterable, **settings) -> torch.optim.Optimizer:
    """bitsandbytes' 8-bit AdamW (optimizer state in 8 bits: ~1.5 GB instead of ~7 GB for an
    865M-parameter UNet).

    Raises:
        ConfigError: one line, when a parameter is not on a CUDA device or bitsandbytes is missing.
    """
    params = list(params)
    devices = sorted({(p["params"][0] if isinstance(p, dict) else p).device.type for p in params})
    if devices != ["cuda"]:
        raise ConfigError(
            f"8-bit AdamW (bitsandbytes) runs on CUDA GPUs only; the parameters are on {', '.join(devices)}: "
            "use the default optimizer (torch.optim.AdamW) on this device"
        )
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise ConfigError(
            "8-bit AdamW needs bitsandbytes: pip install 'layeringdiff[speed]' (CUDA machines only)"
        ) from None
    return bnb.optim.AdamW8bit(params, **settings)
