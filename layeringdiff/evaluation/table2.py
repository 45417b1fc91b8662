"""Table 2: foreground placement diversity of each method's output folders.

Per sample: occupancy ratio, longest span ratio, vertical and horizontal centre of the foreground
alpha (0-100, see :mod:`layeringdiff.metrics.placement`); per method: mean and standard deviation,
plus histograms of all four as a PNG.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from layeringdiff.errors import ConfigError
from layeringdiff.evaluation.figures import histograms
from layeringdiff.evaluation.outputs import list_samples
from layeringdiff.evaluation.records import ResultLog
from layeringdiff.evaluation.report import write_tables
from layeringdiff.evaluation.report_wandb import log_results
from layeringdiff.images import ImageReadError
from layeringdiff.metrics.placement import STATS, placement_stats, summarize

log = logging.getLogger(__name__)

COLUMNS = [
    ("method", "Method"),
    ("occupancy", "Occupancy ratio"),
    ("longest_span", "Longest span ratio"),
    ("vertical_center", "Vertical center"),
    ("horizontal_center", "Horizontal center"),
    ("count", "N"),
]


def _threshold(value) -> float:
    """``eval.threshold`` as a float in [0, 1) (NaN would count no pixel and give empty rows)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        t = float("nan")
    if not 0.0 <= t < 1.0:  # also False for NaN
        raise ConfigError(f"eval.threshold must be a number in [0, 1), got {value!r}")
    return t


def run(cfg: DictConfig) -> dict:
    """Score every folder in ``cfg.eval.methods`` (``{name: output folder}``); write ``table2.*`` and
    ``table2_histograms.png`` into the run folder. Returns ``{"<method>/<stat>": mean}``."""
    methods = dict(cfg.eval.methods or {})
    if not methods:
        raise ConfigError("eval=table2: give at least one output folder, e.g. eval.methods.ours=DIR")
    threshold = _threshold(cfg.eval.threshold)
    out = Path(cfg.paths.output_dir)
    settings = {
        name: {"folder": str(Path(d).resolve()), "threshold": threshold} for name, d in methods.items()
    }
    records = ResultLog(out / "table2_samples.jsonl", settings)
    listing = {name: list_samples(folder) for name, folder in methods.items()}  # fail early on bad folders
    rows, hist, skipped = [], {}, {}
    for name, samples in listing.items():
        skipped[name] = 0
        for s in samples:
            if records.done(name, s.key):
                continue
            try:
                stats = placement_stats(s.alpha(), threshold)
            except (ImageReadError, OSError, ValueError) as e:
                log.warning("table2: skipping %s (%s)", s.path, e)
                skipped[name] += 1
                continue
            records.append(name, s.key, empty=stats is None, **(stats or {}))
        listed = {s.key for s in samples}  # records of folders no longer listed stay out
        mine = [r for r in records.of(name) if r["key"] in listed]
        done = [r for r in mine if not r.get("empty")]
        empty = len(mine) - len(done)
        rows.append({"method": name, **summarize(done), "empty": empty, "skipped": skipped[name]})
        hist[name] = {k: [r[k] for r in done] for k in STATS}
    notes = (
        f"Mean ± std over samples, 0-100; alpha > {threshold}. Occupancy = foreground pixels / all; "
        "longest span = longer side of the foreground's box / image side; centres from the foreground's "
        "pixel mean (0 = top/left). Samples with an empty alpha are counted in `empty` and left out."
    )
    write_tables(rows, out, "table2", COLUMNS, "Table 2: foreground placement diversity", notes=notes)
    fig = histograms(hist, out / "table2_histograms.png", bins=int(cfg.eval.bins))
    log_results(cfg, "table2", rows, {"histograms": fig})
    return {f"{r['method']}/{k}": r[k] for r in rows for k in STATS}
