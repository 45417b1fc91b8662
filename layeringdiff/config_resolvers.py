"""OmegaConf resolvers the configs use.

``${code:package.module.NAME}`` reads a constant from the code. A value the paper fixes (a
detection threshold, the Haar weight, the trimap kernel) is then written once, in Python, yet it
still shows in the YAML beside the other settings and is overridden like them
(``model.haar_weight=0.5``), with no ``+``.
"""

from __future__ import annotations

from importlib import import_module

from omegaconf import OmegaConf

from layeringdiff.errors import ConfigError


def code_constant(dotted: str):
    """The value of the module-level constant ``dotted`` (``package.module.NAME``)."""
    module, _, name = dotted.rpartition(".")
    try:
        value = getattr(import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"${{code:{dotted}}}: no constant {name!r} in module {module!r}") from None
    return list(value) if isinstance(value, tuple) else value


def register_resolvers() -> None:
    """Register ``code`` (idempotent: importing the package twice is harmless)."""
    if not OmegaConf.has_resolver("code"):
        OmegaConf.register_new_resolver("code", code_constant)
