"""LayeringDiff: layered image synthesis by generating a composite and decomposing it."""

import os
import sys

# Nothing is ever downloaded at run time: every pretrained component comes from a local folder
# or the Hugging Face cache (see layeringdiff/weights.py). Forced, not defaulted: an
# HF_HUB_OFFLINE=0 or TRANSFORMERS_OFFLINE=0 in the environment does not turn downloads back on.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")

# huggingface_hub reads the environment once, at its import, and diffusers copies the flag into
# some of its modules; where one of them was imported before this package, set it there too.
_OFFLINE_FLAG_MODULES = (
    "huggingface_hub.constants",
    "diffusers.utils.hub_utils",
    "diffusers.loaders.lora_base",
    "diffusers.models.attention_dispatch",
)
for _name in _OFFLINE_FLAG_MODULES:
    if hasattr(sys.modules.get(_name), "HF_HUB_OFFLINE"):
        sys.modules[_name].HF_HUB_OFFLINE = True

from layeringdiff.config_resolvers import register_resolvers  # noqa: E402

register_resolvers()

__version__ = "0.1.0"
