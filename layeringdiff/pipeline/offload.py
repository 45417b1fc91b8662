"""Model CPU offload for small GPUs: a model sits in CPU memory and visits the GPU only while it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def on_device(module: torch.nn.Module | None, device: torch.device, offload: bool) -> Iterator[None]:
    """Move ``module`` to ``device`` for the block and back to the CPU after it (when ``offload``)."""
    if module is None or not offload or device.type == "cpu":
        yield
        return
    module.to(device)
    try:
        yield
    finally:
        module.to("cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()


def placement(device: str | torch.device, offload: bool) -> torch.device:
    """Where a model is loaded: the CPU when it is offloaded, else ``device``."""
    return torch.device("cpu") if offload else torch.device(device)
