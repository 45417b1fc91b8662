"""A tiny CLIP byte-level BPE tokenizer written offline (vocab.json + merges.txt).

The real CLIP tokenizer has 49,408 tokens: the 256 byte symbols, the same 256 with the
end-of-word marker ``</w>``, ~48k merges, then ``<|startoftext|>`` and ``<|endoftext|>``. This
writes the same kind of folder with the byte symbols, a few dozen merges for common prompt
words and the two special tokens at the end, so ``CLIPTokenizer.from_pretrained(folder)``
loads it and tokenizes any text (unknown words fall back to byte symbols). Tiny text encoders
use :func:`vocab_size` as their ``vocab_size`` and :func:`special_token_ids` for bos/eos.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
WORDS = (
    "a", "an", "the", "of", "and", "in", "on", "at", "with", "over", "photo", "bird", "cat", "dog",
    "flying", "sunset", "mountains", "glass", "red", "blue", "tree", "sky", "person", "car",
)  # fmt: skip
FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes 0..255, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def _merges(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """Left-to-right merges that build each word (last piece carries ``</w>``) from its bytes."""
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        left = pieces[0]
        for right in pieces[1:]:
            if (left, right) not in merges:
                merges.append((left, right))
            left = left + right
    return merges


def vocabulary(words: tuple[str, ...] = WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Token -> id map and merge list: bytes, bytes + ``</w>``, merged pieces, then bos, eos."""
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols]
    merges = _merges(words)
    tokens += [a + b for a, b in merges if a + b not in tokens]
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def vocab_size(words: tuple[str, ...] = WORDS) -> int:
    """Number of tokens of the tokenizer :func:`build` writes (the tiny text encoder's ``vocab_size``)."""
    return len(vocabulary(words)[0])


def special_token_ids(words: tuple[str, ...] = WORDS) -> dict[str, int]:
    """``{"bos_token_id": ..., "eos_token_id": ..., "pad_token_id": ...}`` for a CLIPTextConfig."""
    vocab = vocabulary(words)[0]
    return {"bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": vocab[EOS]}


def build(path: str | os.PathLike, model_max_length: int = 77, words: tuple[str, ...] = WORDS) -> Path:
    """Write a CLIPTokenizer folder (idempotent: an existing complete folder is left alone).

    Args:
        path: the tokenizer folder, e.g. ``<repo>/tokenizer`` (SD2) or ``<repo>/tokenizer_2`` (SDXL).
        model_max_length: padded prompt length; 77 like every CLIP text encoder.
        words: words that get whole-word merges (others are tokenized byte by byte).

    Returns:
        ``path``, loadable with ``transformers.CLIPTokenizer.from_pretrained(path)``.
    """
    from layeringdiff.files import atomic_write_bytes

    path = Path(path)
    if all((path / f).is_file() for f in FILES):
        return path
    vocab, merges = vocabulary(words)
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    config = {**special, "model_max_length": model_max_length, "tokenizer_class": "CLIPTokenizer"}
    config["do_lower_case"] = True
    files = {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
        "tokenizer_config.json": json.dumps(config, indent=2),
        "special_tokens_map.json": json.dumps(special, indent=2),
    }
    for name, text in files.items():
        atomic_write_bytes(path / name, text.encode("utf-8"))
    return path
