"""Table 4: layer decomposition against ground truth on the layering test set.

For every test composite and every method (a ``configs/layering/`` member named in
``eval.methods``): trimap -> alpha (``eval.matting``) -> (member) -> F, B; then MAD x1e3, MSE x1e3,
SAD / 1e3 (:func:`layeringdiff.metrics.layer_errors`) and LPIPS x1e2 of F and B against the
ground truth, summed over the whole image and all three channels and divided by the full value
count. The foreground's error is weighted per pixel (``eval.fg_weight``, :data:`FG_WEIGHTS`):
``alpha`` (default) by the true alpha, ``mask`` by alpha > 0, ``none`` not at all; LPIPS of F
compares the weighted layers (w F). Our reading of the paper: its foreground errors are about 20x
below its background errors and SAD = MAD x N holds in every row, so its foreground error sums
over the foreground and divides by the full pixel count; pixels with alpha = 0 (where F is not
defined by the composite) cannot count at full weight. Per-sample results go to
``table4_samples.jsonl``; a re-run in the same folder skips finished samples and yields the
identical table (records made under another ``fg_weight`` are refused, not mixed).
"""

from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from layeringdiff.errors import ConfigError, UserError
from layeringdiff.evaluation.figures import image_grid
from layeringdiff.evaluation.records import ResultLog
from layeringdiff.evaluation.report import write_tables
from layeringdiff.evaluation.report_wandb import log_results
from layeringdiff.evaluation.sharding import eval_shard, open_records, shard_result
from layeringdiff.evaluation.table4_methods import MattingThenLayering
from layeringdiff.metrics import extractors
from layeringdiff.metrics.layer_errors import layer_errors

log = logging.getLogger(__name__)

METRICS = ("mad", "mse", "sad", "lpips")
FG_WEIGHTS = ("alpha", "mask", "none")
HEADERS = {"mad": "MAD↓ (x1e3)", "mse": "MSE↓ (x1e3)", "sad": "SAD↓ (/1e3)", "lpips": "LPIPS↓ (x1e2)"}
COLUMNS = [("method", "Method")] + [
    (f"{layer}_{m}", f"{layer.upper()} {HEADERS[m]}") for layer in ("fg", "bg") for m in METRICS
]


def foreground_weight(sample: dict, fg_weight: str = "alpha") -> torch.Tensor | None:
    """The per-pixel weight (1, H, W) of the foreground's error: the true alpha, alpha > 0, or ``None``."""
    if fg_weight not in FG_WEIGHTS:
        raise ConfigError(f"eval.fg_weight must be one of {', '.join(FG_WEIGHTS)}, got {fg_weight!r}")
    alpha = sample["alpha"].float()
    return {"alpha": alpha, "mask": (alpha > 0).float(), "none": None}[fg_weight]


def target_features(lpips: torch.nn.Module, sample: dict, fg_weight: str = "alpha") -> torch.Tensor:
    """``lpips.features`` of the ground truth (w F, B) that :func:`score_layers` compares against."""
    w = foreground_weight(sample, fg_weight)
    fg = sample["foreground"].float() * (1.0 if w is None else w)
    return lpips.features(torch.stack([fg, sample["background"].float()]))


def score_layers(
    pred: dict[str, torch.Tensor],
    sample: dict,
    lpips: torch.nn.Module | None = None,
    fg_weight: str = "alpha",
    features: torch.Tensor | None = None,
) -> dict[str, float]:
    """Errors of predicted ``foreground``/``background`` (3, H, W) against the sample's ground truth.

    Args:
        pred: the method's output.
        sample: a test sample (``foreground``, ``background``, ``alpha``).
        lpips: :class:`~layeringdiff.metrics.lpips_metric.LPIPSMetric` or ``None`` to skip LPIPS.
        fg_weight: ``alpha`` | ``mask`` | ``none``: the foreground's per-pixel weight
            (:func:`foreground_weight`); the background is always unweighted.
        features: :func:`target_features` of this sample (same ``fg_weight``), to share across methods.
    """
    w = foreground_weight(sample, fg_weight)
    out, layers = {}, []
    for layer, short in (("foreground", "fg"), ("background", "bg")):
        p, t = pred[layer].float().cpu().clamp(0, 1), sample[layer].float()
        if p.shape != t.shape:
            raise ValueError(f"{layer}: prediction {tuple(p.shape)} vs ground truth {tuple(t.shape)}")
        weight = w if layer == "foreground" else None
        out.update({f"{short}_{k}": v for k, v in layer_errors(p, t, weight=weight).items()})
        layers.append(p * w if weight is not None else p)
    if lpips is not None:
        if features is None:
            features = target_features(lpips, sample, fg_weight)
        d = lpips.distance(lpips.features(torch.stack(layers)), features)
        out["fg_lpips"], out["bg_lpips"] = float(d[0]), float(d[1])
    return out


def _save_figure_inputs(folder: Path, key: str, sample: dict, preds: dict[str, dict]) -> None:
    from layeringdiff.images import save_png

    save_png(sample["composite"], folder / "composite" / f"{key}.png")
    save_png(sample["background"], folder / "ground_truth" / f"{key}.png")
    save_png(sample["foreground"], folder / "foreground" / "ground_truth" / f"{key}.png")
    for name, pred in preds.items():
        save_png(pred["background"].clamp(0, 1), folder / name / f"{key}.png")
        save_png(pred["foreground"].clamp(0, 1), folder / "foreground" / name / f"{key}.png")


def _figure(folder: Path, keys: list[str], methods: list[str], path: Path) -> Path | None:
    from layeringdiff.images import open_image

    cols = ["composite", "ground_truth", *methods]
    rows = []
    for key in keys:
        files = [folder / c / f"{key}.png" for c in cols]
        if all(f.is_file() for f in files):
            rows.append([open_image(f) for f in files])
    if not rows:
        return None
    return image_grid(rows, ["Composite", "GT background", *methods], path)


def build_methods(cfg: DictConfig) -> dict[str, MattingThenLayering]:
    """One :class:`MattingThenLayering` per name in ``eval.methods`` (members of ``eval.layerings``),
    all sharing the one ``eval.matting`` (``None``: the ground-truth alpha)."""
    from hydra.utils import instantiate

    ev = cfg.eval
    names = list(ev.methods or [])
    if not names:
        raise ConfigError("eval=table4: no methods configured (eval.methods=[layeringdiff,germer,...])")
    unknown = [n for n in names if n not in (ev.get("layerings") or {})]
    if unknown:
        raise ConfigError(
            f"eval.methods: {', '.join(unknown)} not in eval.layerings ({', '.join(ev.get('layerings') or {})}); "
            "add one with +eval.layerings.NAME={_target_: ...} or /layering@layerings.NAME in the config"
        )
    matting = instantiate(ev.matting) if ev.get("matting") is not None else None
    device = cfg.get("device", "cpu")
    return {
        name: MattingThenLayering(
            instantiate(ev.layerings[name], device=device, dtype=torch.float32), matting
        )
        for name in names
    }


def _run_methods(cfg, methods, sample, records, lpips, want_fig, fig_dir) -> dict[str, dict]:
    """Every method that has no record for this sample (or lacks its figure image) on one sample."""
    key, preds, features = sample["key"], {}, None
    fg_weight = cfg.eval.get("fg_weight", "alpha")
    for name, method in methods.items():
        if records.done(name, key) and not (want_fig and not (fig_dir / name / f"{key}.png").is_file()):
            continue
        generator = torch.Generator().manual_seed(int(cfg.seed) + zlib.crc32(key.encode()))
        start = time.perf_counter()
        try:
            pred = method(sample["composite"], sample["trimap"], generator, alpha=sample["alpha"])
        except UserError as e:  # the method cannot handle this input (e.g. no definite foreground)
            log.warning("table4: %s failed on %s: %s", name, key, e)
            records.append(name, key, failed=str(e))
            continue
        seconds = time.perf_counter() - start
        preds[name] = pred
        if not records.done(name, key):
            if lpips is not None and features is None:  # ground truth's LPIPS features, once
                features = target_features(lpips, sample, fg_weight)
            scores = score_layers(pred, sample, lpips, fg_weight, features)
            records.append(name, key, seconds=seconds, **scores)
    return preds


def _rows(records: ResultLog, methods: list[str], keys: set[str]) -> list[dict]:
    """One row per method: means over this run's samples (failed ones counted, left out of the means)."""
    rows = []
    for name in methods:
        mine = [r for r in records.of(name) if r["key"] in keys]
        recs = [r for r in mine if not r.get("failed")]
        row = {"method": name, "count": len(recs), "failed": len(mine) - len(recs)}
        for col in [c for c, _ in COLUMNS[1:]] + ["seconds"]:
            vals = [r[col] for r in recs if r.get(col) is not None]
            row[col] = sum(vals) / len(vals) if vals else None
        rows.append(row)
    return rows


def _write(cfg: DictConfig, out: Path, rows: list[dict], total: int, corrupt: int, figure) -> None:
    weighting = {
        "alpha": "F's error weighted by the true alpha (ours)",
        "mask": "F's error only where alpha > 0 (ours)",
        "none": "F's error unweighted",
    }[cfg.eval.get("fg_weight", "alpha")]
    notes = (
        f"Means over {total} test composites ({corrupt} unreadable skipped; `failed` = composites a method "
        f"could not process, left out of its means); values in [0,1], whole image, all 3 channels, divided "
        f"by the full value count; {weighting}; SAD = sum |d| / 1e3 per image (= MAD x N). "
        "`seconds` = method time per composite (not in the paper)."
    )
    write_tables(rows, out, "table4", COLUMNS, "Table 4: layer decomposition vs ground truth", notes=notes)
    log_results(cfg, "table4", rows, {"figure": figure} if figure else None)


class NothingScoredError(UserError, RuntimeError):
    """A method scored no sample (it failed on every one): its row would be empty."""


def _require_scores(rows: list[dict]) -> None:
    """Fail the run (after the tables are written) when a method scored no sample."""
    empty = [f"{r['method']} ({r['failed']} failed)" for r in rows if r["count"] == 0]
    if empty:
        raise NothingScoredError(
            f"table4: no sample scored for {', '.join(empty)}; the reasons are in the log and in "
            "table4_samples.jsonl (`failed`)"
        )


def _limit(value) -> int:
    """``eval.limit`` (null: all): a whole number >= 1 (-2 gave an empty table and exit 0)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"eval.limit must be null or a whole number >= 1, got {value!r}")
    return value


def _record_settings(cfg: DictConfig, methods: list[str], fg_weight: str, lpips: bool) -> dict[str, dict]:
    """Per method, what its per-sample records depend on (a rerun under other settings is refused):
    the data set (its size, seed, split... but not ``num_samples``: a sample is a function of its
    key), the matting, the region, the metrics and the method's own ``eval.layerings`` entry."""
    ev = cfg.eval
    data = dict(OmegaConf.to_container(ev.dataset, resolve=True) or {})
    data.pop("num_samples", None)
    shared = {
        "dataset": data,
        "matting": ev.get("matting"),
        "mask": ev.get("mask"),
        "fg_weight": fg_weight,
        "lpips": cfg.metrics.get("lpips") if lpips else False,
        "seed": cfg.get("seed"),
    }
    return {m: {**shared, "layering": ev.layerings.get(m) if "layerings" in ev else None} for m in methods}


def run(cfg: DictConfig) -> dict:
    """Evaluate every method in ``cfg.eval.methods`` on ``cfg.eval.dataset``; write ``table4.*``,
    ``table4_samples.jsonl`` and ``table4_figure.png``. Returns ``{"<method>/<fg|bg>_<metric>": mean}``."""
    from hydra.utils import instantiate

    out, ev = Path(cfg.paths.output_dir), cfg.eval
    fg_weight = ev.get("fg_weight", "alpha")
    if fg_weight not in FG_WEIGHTS:
        raise ConfigError(f"eval.fg_weight must be one of {', '.join(FG_WEIGHTS)}, got {fg_weight!r}")
    methods = build_methods(cfg)
    dataset = instantiate(ev.dataset)
    total = len(dataset) if ev.get("limit") is None else min(len(dataset), _limit(ev.limit))
    lpips = extractors.lpips(cfg) if ev.get("lpips", True) else None
    settings = _record_settings(cfg, list(methods), fg_weight, lpips is not None)
    shard = eval_shard(cfg)
    records = open_records(out, "table4", shard, settings)
    fig_dir, fig_keys, corrupt = out / "table4_figure", [], 0
    keys: set[str] = set()  # this run's samples: records of other samples (an earlier, longer run) stay out
    for index in tqdm(range(total), desc="table4", disable=not ev.get("progress", True)):
        if not shard.owns(index):  # sharded: every N-th composite
            continue
        key = dataset.key(index) if hasattr(dataset, "key") else None
        keys.update([key] if key is not None else [])
        want_fig = index < int(ev.figure_samples)
        if key is not None and not want_fig and all(records.done(m, key) for m in methods):
            continue
        try:
            sample = dataset[index]
        except UserError as e:  # a corrupt sample (unreadable file) is skipped and counted, not fatal
            log.warning("table4: skipping sample %d (%s: %s)", index, type(e).__name__, e)
            corrupt += 1
            continue
        keys.add(sample["key"])
        fig_keys += [sample["key"]] if want_fig else []
        preds = _run_methods(cfg, methods, sample, records, lpips, want_fig, fig_dir)
        if want_fig and preds:
            _save_figure_inputs(fig_dir, sample["key"], sample, preds)
    if not shard.whole:
        return shard_result(shard, "table4", len(keys))
    rows = _rows(records, list(methods), keys)
    _write(
        cfg, out, rows, total, corrupt, _figure(fig_dir, fig_keys, list(methods), out / "table4_figure.png")
    )
    _require_scores(rows)
    return {f"{r['method']}/{c}": r[c] for r in rows for c, _ in COLUMNS[1:]}
