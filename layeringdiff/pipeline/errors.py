"""Errors an inference run reports to the user as one line (``infer.py`` prints them, exits 1)."""

from __future__ import annotations

from layeringdiff.errors import UserError


class InputError(UserError, ValueError):
    """A user input (prompt, indices, image, box, mask, alpha, output folder) cannot be used."""


class NoForegroundError(InputError):
    """Grounding DINO found no box for the foreground text above the thresholds."""
