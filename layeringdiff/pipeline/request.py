"""One decomposition request, checked once, with the same messages wherever it comes from.

``infer.py`` builds a :class:`LayerRequest` from its settings (reading the files it names) and
checks it before any model is loaded; :class:`~layeringdiff.pipeline.pipeline.LayeringDiffPipeline`
builds one from its keyword arguments and runs the same :meth:`LayerRequest.check`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.foreground import ForegroundSpec
from layeringdiff.pipeline.prompt import foreground_prompt

MIN_SIZE, MAX_SIZE = 16, 4096
SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed's range, from 0
FOREGROUND_HINT = "give the foreground as foreground=TEXT, box=[x0,y0,x1,y1], mask=, trimap= or alpha="


def whole_number(name: str, value, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]: ints, integral floats (7.0) and ASCII digit strings
    ("7") pass; NaN, fractions, booleans and other text are refused in one line naming the value."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        number = int(value)
    if number is None or number < minimum or (maximum is not None and number > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise InputError(f"{name} must be a whole number {bounds}, got {value!r}")
    return number


def check_seed(value, name: str = "seed") -> int:
    """A generator seed: a whole number from 0 to 2**63 - 1."""
    return whole_number(name, value, 0, SEED_MAX)


def check_generation_size(height, width) -> tuple[int, int]:
    """Text mode: ``height`` and ``width`` must be multiples of 8 in [MIN_SIZE, MAX_SIZE]; returns them."""
    sizes = []
    for size, name in ((height, "height"), (width, "width")):
        size = whole_number(name, size, MIN_SIZE, MAX_SIZE)
        if size % 8:
            raise InputError(f"{name}={size} must be a multiple of 8 in [{MIN_SIZE}, {MAX_SIZE}]")
        sizes.append(size)
    return sizes[0], sizes[1]


def check_image_size(image: torch.Tensor, source: str = "image") -> None:
    """Real-image mode: each side in [MIN_SIZE, MAX_SIZE] (larger images are refused, not resized,
    so the layers always have the input's size)."""
    check_image_dims(*image.shape[-2:], source)


def check_image_dims(h: int, w: int, source: str = "image") -> None:
    """:func:`check_image_size` from the sides alone (an image file's header, before decoding it)."""
    if min(h, w) < MIN_SIZE or max(h, w) > MAX_SIZE:
        raise InputError(
            f"{source} is {w}x{h}; sizes from {MIN_SIZE} to {MAX_SIZE} pixels per side are supported "
            "(resize it first)"
        )


@dataclass
class LayerRequest:
    """What to decompose: a text prompt (generate, then decompose) or a real image, and the
    foreground(s), top-most first.

    Attributes:
        prompt: text prompt T (text mode); exactly one of ``prompt`` and ``image``.
        image: (3, H, W) real image in [0, 1] (real-image mode).
        foregrounds: one :class:`ForegroundSpec` per layer; in text mode filled from
            ``foreground_indices`` by :meth:`check` when not given.
        foreground_indices: word indices of each foreground in the prompt (text mode).
        negative_prompt, control_image: SDXL settings (text mode).
        source: how messages name the image (its file path when read from one).
    """

    prompt: str | None = None
    image: torch.Tensor | None = None
    foregrounds: list[ForegroundSpec] = field(default_factory=list)
    foreground_indices: list[list[int]] | None = None
    negative_prompt: str | None = None
    control_image: torch.Tensor | None = None
    source: str = "image"

    @property
    def text_mode(self) -> bool:
        return self.prompt is not None

    def check(self, height: int | None = None, width: int | None = None) -> LayerRequest:
        """Validate the request (cheap; before any model runs) and return it, ``foregrounds`` filled.

        ``height`` and ``width`` (text mode) are checked when given.

        Raises:
            InputError: with a one-line message.
        """
        if self.prompt is not None and self.image is not None:
            raise InputError("give either a text prompt (prompt=) or an image (image=), not both")
        if self.prompt is None and self.image is None:
            raise InputError(
                "nothing to do: give either a text prompt (prompt=TEXT) or an image (image=PATH)"
            )
        if self.text_mode:
            self._check_text()
            if height is not None and width is not None:
                check_generation_size(height, width)
        else:
            if self.image.ndim != 3 or self.image.shape[0] != 3:
                raise InputError(f"{self.source} must be (3, H, W), got {tuple(self.image.shape)}")
            check_image_size(self.image, self.source)
        if not self.foregrounds:
            raise InputError(f"{self.source}: no foreground given; {FOREGROUND_HINT}")
        for spec in self.foregrounds:
            spec.kind()
        return self

    def _check_text(self) -> None:
        if not self.prompt.strip():
            raise InputError("the prompt is empty")
        if self.foregrounds:
            return
        if self.foreground_indices is None:
            raise InputError(
                "text mode needs foreground_indices, e.g. foreground_indices=[0,1,2] or [[0,1],[5,6]]"
            )
        self.foregrounds = [
            ForegroundSpec(text=foreground_prompt(self.prompt, ix)) for ix in self.foreground_indices
        ]


def request_from_arguments(
    prompt: str | None,
    foreground_indices: Sequence[Sequence[int]] | None,
    image: torch.Tensor | None,
    foregrounds: Sequence[ForegroundSpec] | None,
    negative_prompt: str | None = None,
    control_image: torch.Tensor | None = None,
) -> LayerRequest:
    """A :class:`LayerRequest` from the pipeline's keyword arguments (not yet checked)."""
    return LayerRequest(
        prompt=prompt,
        image=image,
        foregrounds=list(foregrounds or []),
        foreground_indices=list(foreground_indices) if foreground_indices is not None else None,
        negative_prompt=negative_prompt,
        control_image=control_image,
    )
