"""Send result tables and figures to the configured loggers (W&B offline by default).

No-op when ``cfg.logger`` is null. W&B gets a ``wandb.Table`` per table and images; any other
Lightning logger (CSV, TensorBoard) gets the numbers as metrics ``<table>/<row>/<column>``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def log_results(
    cfg: DictConfig,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    images: Mapping[str, str | Path] | None = None,
    label_key: str = "method",
) -> int:
    """Log one result table (and optional images) to every logger in ``cfg.logger``.

    Args:
        cfg: the evaluate config (its ``logger`` group is instantiated here).
        name: table name, e.g. ``"table4"``.
        rows: the rows given to :func:`layeringdiff.evaluation.report.write_tables`.
        images: ``{caption: png path}``.
        label_key: the row field used to name rows in flat metric names.

    Returns:
        How many loggers received the results.
    """
    from layeringdiff.tasks.common import instantiate_group

    loggers = instantiate_group(cfg.get("logger"))
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            columns = sorted({k for r in rows for k in r})
            lg.log_table(key=name, columns=columns, data=[[r.get(c) for c in columns] for r in rows])
            for caption, path in (images or {}).items():
                lg.log_image(key=f"{name}/{caption}", images=[str(path)])
        else:
            flat = {
                f"{name}/{r.get(label_key, i)}/{k}": float(v)
                for i, r in enumerate(rows)
                for k, v in r.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            lg.log_metrics(flat, step=0)
        if hasattr(lg, "finalize"):
            lg.finalize("success")
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()
    return len(loggers)
