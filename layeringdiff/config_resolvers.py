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
    """Register ``code``, ``job_stamp`` and ``rank_suffix`` (idempotent: importing the package
    twice is harmless). The last two name run folders and log files of multi-process jobs
    (:mod:`layeringdiff.distributed`); ``job_stamp`` is cached so a run's folder name is read once."""
    from layeringdiff.distributed import job_stamp, rank_suffix

    if not OmegaConf.has_resolver("code"):
        OmegaConf.register_new_resolver("code", code_constant)
    if not OmegaConf.has_resolver("job_stamp"):
        OmegaConf.register_new_resolver("job_stamp", job_stamp, use_cache=True)
    if not OmegaConf.has_resolver("rank_suffix"):
        OmegaConf.register_new_resolver("rank_suffix", rank_suffix)
