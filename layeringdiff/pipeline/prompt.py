"""Foreground prompt from word indices of the text prompt (the paper's I_F -> T_F).

How a prompt is split into words (the indices count these words, from 0):

* the prompt is split on whitespace (any run of spaces, tabs, newlines);
* punctuation is stripped from both ends of each piece ("sunset," -> "sunset",
  "(red)" -> "red"); punctuation inside a word stays ("bird's", "red-winged", "3.5");
* a piece that is only punctuation ("-", "...", ",") is not a word and takes no index.

The foreground prompt joins the selected words with single spaces in prompt order, whatever
the order or repetition of the indices: ("A bird flying at sunset over the mountains",
{0, 1, 2}) -> "A bird flying".
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from layeringdiff.pipeline.errors import InputError

PUNCTUATION = string.punctuation + "“”‘’«»…—–¡¿"


def split_words(prompt: str) -> list[str]:
    """The words of ``prompt`` that foreground indices refer to (see the module docstring)."""
    words = (piece.strip(PUNCTUATION) for piece in prompt.split())
    return [w for w in words if w]


def foreground_prompt(prompt: str, indices: Iterable[int]) -> str:
    """Join the words of ``prompt`` at ``indices`` into the foreground prompt T_F.

    Args:
        prompt: the full text prompt T.
        indices: 0-based word indices I_F (any order; duplicates ignored).

    Raises:
        InputError: empty index set, a non-integer, negative or out-of-range index.
    """
    words = split_words(prompt)
    if isinstance(indices, int) and not isinstance(indices, bool):
        indices = [indices]  # one word: foreground_indices=1 means [1]
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Iterable):
        raise InputError(f"foreground indices must be a list of integers such as [0,1,2], got {indices!r}")
    chosen = list(indices)
    if not chosen:
        raise InputError("foreground_indices is empty: give the word indices of the foreground, e.g. [0,1,2]")
    for i in chosen:
        if isinstance(i, bool) or not isinstance(i, int):
            raise InputError(f"foreground index {i!r} is not an integer")
        if not 0 <= i < len(words):
            raise InputError(
                f"foreground index {i} is out of range: the prompt has {len(words)} words (indices 0..{len(words) - 1})"
            )
    return " ".join(words[i] for i in sorted(set(chosen)))
