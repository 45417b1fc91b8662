"""Table 3 from a study database: mean score, 95% interval, ratings and participants per cell.

Rows are the paper's (Foreground / Background / Composite x Text Align. / Image Qual.), one
column per method. Two interval methods (``study.ci``):

- ``t`` (default): Student-t interval over the cell's ratings,
  mean +- t_{(1+c)/2, n-1} * sd / sqrt(n) (sd with n-1). It treats ratings as independent.
- ``bootstrap``: participants are resampled with replacement (``bootstrap_samples`` times,
  seeded); each resample's statistic is the mean of all ratings of the drawn participants; the
  interval is the (1-c)/2 and (1+c)/2 percentiles. It accounts for ratings of one participant
  being correlated; prefer it once there are ~10+ participants.

A cell with a single rating (t) or participant (bootstrap) has no interval (reported as null).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from layeringdiff.study import CRITERIA, RATED_IMAGES

log = logging.getLogger(__name__)

LAYER_ROWS = {"foreground": "FG", "background": "BG", "composite": "Composite"}
CRITERION_ROWS = {"text_alignment": "Text Align.", "image_quality": "Image Qual."}


def t_interval(scores: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of ``scores``; (nan, nan) with fewer than two scores."""
    from scipy.stats import t

    x = np.asarray(scores, dtype=np.float64)
    if x.size < 2:
        return math.nan, math.nan
    half = float(t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return float(x.mean()) - half, float(x.mean()) + half


def bootstrap_participants(
    scores_by_participant: Mapping[str, Sequence[float]],
    confidence: float = 0.95,
    samples: int = 10000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the pooled mean, resampling participants with replacement.

    Args:
        scores_by_participant: each participant's ratings of one cell.
        confidence: e.g. 0.95.
        samples: number of resamples.
        seed: numpy seed (the interval is reproducible).
    """
    groups = [np.asarray(v, dtype=np.float64) for _, v in sorted(scores_by_participant.items()) if len(v)]
    if len(groups) < 2:
        return math.nan, math.nan
    sums = np.array([g.sum() for g in groups])
    counts = np.array([g.size for g in groups])
    draw = np.random.default_rng(seed).integers(0, len(groups), size=(samples, len(groups)))
    means = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def summarize(
    ratings: Iterable[Mapping],
    methods: Sequence[str] | None = None,
    ci: str = "t",
    confidence: float = 0.95,
    bootstrap_samples: int = 10000,
    seed: int = 0,
) -> list[dict]:
    """One cell per (layer, criterion, method): mean, ci_low, ci_high, n_ratings, n_participants.

    Args:
        ratings: dicts with participant, method, layer, criterion, score (``storage.read_ratings``).
        methods: columns in order (default: every rated method, sorted).
        ci: ``"t"`` or ``"bootstrap"`` (see the module docstring).
        confidence: interval level.
        bootstrap_samples: resamples for ``ci="bootstrap"``.
        seed: bootstrap seed.

    Raises:
        ValueError: unknown ``ci``, an unknown method name, or no ratings.
    """
    if ci not in ("t", "bootstrap"):
        raise ValueError(f"study.ci must be 't' or 'bootstrap', got '{ci}'")
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        cells[(r["layer"], r["criterion"], r["method"])][r["participant"]].append(float(r["score"]))
    rated = sorted({m for _, _, m in cells})
    if not rated:
        raise ValueError("the study database holds no ratings yet")
    methods = list(methods) if methods else rated
    unknown = [m for m in methods if m not in rated]
    if unknown:
        raise ValueError(f"no ratings for method(s) {', '.join(unknown)}; rated methods: {', '.join(rated)}")
    out = []
    for layer in RATED_IMAGES:
        for crit in CRITERIA:
            for m in methods:
                by_part = cells.get((layer, crit, m), {})
                scores = [s for v in by_part.values() for s in v]
                if ci == "t":
                    lo, hi = t_interval(scores, confidence)
                else:
                    lo, hi = bootstrap_participants(by_part, confidence, bootstrap_samples, seed)
                out.append(
                    dict(
                        layer=layer,
                        criterion=crit,
                        method=m,
                        mean=float(np.mean(scores)) if scores else math.nan,
                        ci_low=lo,
                        ci_high=hi,
                        n_ratings=len(scores),
                        n_participants=len(by_part),
                    )
                )
    return out


def _nan_to_none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


def table3_rows(cells: Sequence[Mapping], methods: Sequence[str]) -> list[dict]:
    """Table 3 layout: one row per (layer, criterion); per method the mean, interval and counts."""
    by_key = {(c["layer"], c["criterion"], c["method"]): c for c in cells}
    rows = []
    for layer in RATED_IMAGES:
        for crit in CRITERIA:
            row: dict = {"layer": LAYER_ROWS[layer], "criterion": CRITERION_ROWS[crit]}
            for m in methods:
                c = by_key[(layer, crit, m)]
                lo, hi = _nan_to_none(c["ci_low"]), _nan_to_none(c["ci_high"])
                shown = "-" if not c["n_ratings"] else f"{c['mean']:.2f}"
                if lo is not None:
                    shown += f" [{lo:.2f}, {hi:.2f}]"
                row[f"{m}_shown"] = shown + f" (n={c['n_ratings']}, p={c['n_participants']})"
                row[m] = _nan_to_none(c["mean"])
                row[f"{m}_ci_low"], row[f"{m}_ci_high"] = lo, hi
                row[f"{m}_n_ratings"], row[f"{m}_n_participants"] = c["n_ratings"], c["n_participants"]
            rows.append(row)
    return rows


def write_table3(
    cells: Sequence[Mapping],
    methods: Sequence[str],
    output_dir: str | Path,
    notes: str = "",
    chart: bool = True,
    confidence: float = 0.95,
) -> dict[str, Path]:
    """Write table3.md/.csv/.json (``metrics.report.write_tables``) and the bar chart table3.png."""
    from layeringdiff.evaluation.report import write_tables

    columns = [("layer", "Layer"), ("criterion", "Criterion")] + [(f"{m}_shown", m) for m in methods]
    paths = write_tables(
        table3_rows(cells, methods),
        output_dir,
        "table3",
        columns=columns,
        title=f"Table 3: user study, mean score (1-5) [{confidence:.0%} CI] (n = ratings, p = participants)",
        notes=notes,
    )
    if chart:
        from layeringdiff.study.chart import bar_chart

        paths["png"] = bar_chart(cells, methods, Path(output_dir) / "table3.png")
    return paths


def run(cfg) -> dict:
    """``evaluate.py eval=table3 study.db=PATH``: aggregate a study database into Table 3.

    Reads ``cfg.study`` (db, methods, ci, confidence, bootstrap_samples, chart) and writes into
    ``cfg.study.out_dir`` or else ``cfg.paths.output_dir``.

    Returns:
        Flat numbers: ``table3/<layer>/<criterion>/<method>`` -> mean, plus ``n_ratings`` and
        ``n_participants`` of the whole study.
    """
    from layeringdiff.study.storage import read_ratings

    st = cfg.study
    out_dir = Path(st.get("out_dir") or cfg.paths.output_dir)
    ratings = read_ratings(st.db)
    ci, conf = st.get("ci", "t"), float(st.get("confidence", 0.95))
    cells = summarize(
        ratings,
        methods=list(st.methods) if st.get("methods") else None,
        ci=ci,
        confidence=conf,
        bootstrap_samples=int(st.get("bootstrap_samples", 10000)),
        seed=int(cfg.get("seed") or 0),
    )
    methods = list(dict.fromkeys(c["method"] for c in cells))
    n_part = len({r["participant"] for r in ratings})
    how = "Student-t over ratings" if ci == "t" else "bootstrap over participants (percentile)"
    notes = (
        f"{conf:.0%} interval: {how}. {len(ratings)} ratings from {n_part} participants; database {st.db}."
    )
    paths = write_table3(cells, methods, out_dir, notes, bool(st.get("chart", True)), conf)
    print(paths["md"].read_text(), flush=True)
    log.info("Table 3 written to %s", ", ".join(str(p) for p in paths.values()))
    from layeringdiff.evaluation.report_wandb import (
        log_results,  # like Tables 1, 2 and 4 (no-op without logger)
    )

    log_results(
        cfg,
        "table3",
        [{**c, "cell": f"{c['method']}/{c['layer']}/{c['criterion']}"} for c in cells],
        {"chart": paths["png"]} if "png" in paths else None,
        label_key="cell",
    )
    result = {f"table3/{c['layer']}/{c['criterion']}/{c['method']}": c["mean"] for c in cells}
    result.update(n_ratings=float(len(ratings)), n_participants=float(n_part))
    return result
