"""A callback that records which samples each process trained on (checking data splitting).

Each rank appends ``{"epoch": e, "step": s, "keys": [...]}`` lines to
``<folder>/seen_keys.rank<R>.jsonl``; the union over ranks of one epoch's keys shows whether every
sample was seen once (tests/test_ddp_cpu.py). Enable with
``+callbacks.seen_keys._target_=layeringdiff.training.seen_keys.SeenKeys +callbacks.seen_keys.folder=DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl


class SeenKeys(pl.Callback):
    """Append every training batch's sample keys to a per-rank JSON-lines file under ``folder``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = {"epoch": trainer.current_epoch, "step": trainer.global_step, "keys": list(batch["key"])}
        with open(self.folder / f"seen_keys.rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")


def read_seen(folder: str | Path) -> dict[int, dict[int, list[str]]]:
    """``{rank: {epoch: keys in training order}}`` from the files :class:`SeenKeys` wrote."""
    out: dict[int, dict[int, list[str]]] = {}
    for path in sorted(Path(folder).glob("seen_keys.rank*.jsonl")):
        rank = int(path.stem.split(".rank")[1])
        for line in path.read_text().splitlines():
            row = json.loads(line)
            out.setdefault(rank, {}).setdefault(row["epoch"], []).extend(row["keys"])
    return out
