"""LayeringDiff: layered image synthesis by generating a composite and decomposing it."""

import os

# Nothing is ever downloaded at run time: every pretrained component comes from a local folder
# or the Hugging Face cache (see layeringdiff/weights.py). Set before any HF library is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_MODE", os.environ.get("WANDB_MODE", "offline"))

__version__ = "0.1.0"
