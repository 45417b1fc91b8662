"""A console a researcher can read: third-party noise off, loss lines when no progress bar is drawn.

Every log record is printed once (``configs/hydra/default.yaml`` hands Lightning's loggers to
Hydra's handlers). :func:`quiet_console` removes what remains: Lightning's advertising tips,
known harmless warnings and the Hugging Face weight-loading bars. Training draws Lightning's
progress bar (with the loss) only on a terminal; otherwise (stderr redirected to a file, which
would fill with carriage returns and escape codes) :class:`LossLines` logs the loss as lines.
"""

from __future__ import annotations

import logging
import sys
import warnings

import lightning.pytorch as pl

log = logging.getLogger(__name__)

# (message regex, why it is harmless here)
KNOWN_WARNINGS = [
    # FBDD / HFA keep their frozen VAE, text encoder and LPIPS trunk in eval mode on purpose.
    (r"Found \d+ module\(s\) in eval mode", "frozen sub-networks are in eval mode on purpose"),
    # Lightning 2.6 calls a torch pytree API that torch 2.14 deprecated; nothing to do on our side.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", "Lightning's own call into torch"),
]


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_console() -> None:
    """Silence known third-party noise for this process (idempotent)."""
    for pattern, _why in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in rank_zero.filters):
        rank_zero.addFilter(_DropTips())
    import huggingface_hub.utils
    import transformers.utils.logging

    huggingface_hub.utils.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def progress_bar_drawn(enabled: bool) -> bool:
    """Whether Lightning will draw its progress bar: enabled in config and stderr is a terminal."""
    return bool(enabled) and sys.stderr.isatty()


class LossLines(pl.Callback):
    """Log ``step N/M: train/loss=...`` every ``every`` steps, for runs without a progress bar."""

    def __init__(self, every: int) -> None:
        self.every = max(1, int(every))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every or not trainer.is_global_zero:
            return
        shown = {k: float(v) for k, v in trainer.progress_bar_metrics.items() if k.startswith("train/")}
        if not shown and isinstance(outputs, dict) and "loss" in outputs:
            shown = {"train/loss": float(outputs["loss"])}
        numbers = ", ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items()))
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
        log.info("step %d/%s: %s", step, total, numbers or "no loss logged yet")
