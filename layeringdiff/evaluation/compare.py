"""``eval=compare``: several runs' tables side by side (e.g. two seeds, or ours vs a rerun baseline)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from layeringdiff.errors import ConfigError, MissingFileError
from layeringdiff.evaluation.report import read_table, write_tables


def run(cfg: DictConfig) -> dict:
    """Read ``<run>/<eval.table>.json`` of every run in ``eval.runs``; write ``compare_<table>.*``.

    Rows are labelled by ``eval.labels`` (same order as the runs) or the run folders' names.
    """
    ev = cfg.eval
    runs = [Path(r) for r in ev.runs or []]
    if not runs:
        raise ConfigError(
            "eval=compare: list run folders, e.g. eval.runs=[outputs/evaluate/runs/A,outputs/evaluate/runs/B]"
        )
    labels = list(ev.get("labels") or [r.name for r in runs])
    if len(labels) != len(runs):
        raise ConfigError(f"eval=compare: {len(labels)} labels for {len(runs)} runs")
    columns, rows, title = [("run", "Run")], [], None
    for label, folder in zip(labels, runs):
        path = folder / f"{ev.table}.json"
        if not path.is_file():
            raise MissingFileError(f"eval=compare: {path} not found (did that run finish eval={ev.table}?)")
        table = read_table(path)
        title = title or table.get("title")
        for col in table["columns"]:
            if (col["key"], col["header"]) not in columns:
                columns.append((col["key"], col["header"]))
        rows += [{"run": label, **row} for row in table["rows"]]
    write_tables(rows, cfg.paths.output_dir, f"compare_{ev.table}", columns, f"{title} (runs compared)")
    return {"rows": len(rows)}
