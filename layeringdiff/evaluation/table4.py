"""Table 4: layer decomposition against ground truth on the layering test set.

For every test composite and every method: trimap -> (method) -> F, B; then MAD x1e3, MSE x1e3,
SAD / 1e3 (:func:`layeringdiff.metrics.layer_errors`) and LPIPS x1e2 of F and B against the
ground truth, over the whole image and all three channels (the paper's setting; ``eval.mask=alpha``
restricts both layers to alpha > 0 instead). Per-sample results go to ``table4_samples.jsonl``;
a re-run in the same folder skips finished samples and yields the identical table.
"""

from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from layeringdiff.evaluation.figures import image_grid
from layeringdiff.evaluation.records import ResultLog
from layeringdiff.evaluation.report import write_tables
from layeringdiff.evaluation.report_wandb import log_results
from layeringdiff.metrics import extractors
from layeringdiff.metrics.layer_errors import layer_errors

log = logging.getLogger(__name__)

METRICS = ("mad", "mse", "sad", "lpips")
HEADERS = {"mad": "MAD↓ (x1e3)", "mse": "MSE↓ (x1e3)", "sad": "SAD↓ (/1e3)", "lpips": "LPIPS↓ (x1e2)"}
COLUMNS = [("method", "Method")] + [
    (f"{layer}_{m}", f"{layer.upper()} {HEADERS[m]}") for layer in ("fg", "bg") for m in METRICS
]


def score_layers(
    pred: dict[str, torch.Tensor],
    sample: dict,
    lpips: torch.nn.Module | None = None,
    mask: str | None = None,
    target_features: list[torch.Tensor] | None = None,
) -> dict[str, float]:
    """Errors of predicted ``foreground``/``background`` (3, H, W) against the sample's ground truth.

    Args:
        pred: the method's output.
        sample: a test sample (``foreground``, ``background``, ``alpha``).
        lpips: :class:`~layeringdiff.metrics.lpips_metric.LPIPSMetric` or ``None`` to skip LPIPS.
        mask: ``None`` (whole image, the paper) or ``"alpha"`` (only pixels with alpha > 0).
        target_features: ``lpips.features`` of the stacked ground truth (F, B), to share across methods.
    """
    region = sample["alpha"] > 0 if mask == "alpha" else None
    out, layers = {}, []
    for layer, short in (("foreground", "fg"), ("background", "bg")):
        p, t = pred[layer].float().cpu().clamp(0, 1), sample[layer].float()
        if p.shape != t.shape:
            raise ValueError(f"{layer}: prediction {tuple(p.shape)} vs ground truth {tuple(t.shape)}")
        out.update({f"{short}_{k}": v for k, v in layer_errors(p, t, region).items()})
        layers.append(p)
    if lpips is not None:
        if target_features is None:
            target_features = lpips.features(torch.stack([sample["foreground"], sample["background"]]))
        d = lpips.distance(lpips.features(torch.stack(layers)), target_features)
        out["fg_lpips"], out["bg_lpips"] = float(d[0]), float(d[1])
    return out


def _save_figure_inputs(folder: Path, key: str, sample: dict, preds: dict[str, dict]) -> None:
    from layeringdiff.images import save_png

    save_png(sample["composite"], folder / "composite" / f"{key}.png")
    save_png(sample["background"], folder / "ground_truth" / f"{key}.png")
    for name, pred in preds.items():
        save_png(pred["background"].clamp(0, 1), folder / name / f"{key}.png")


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


def run(cfg: DictConfig) -> dict:
    """Evaluate every method in ``cfg.eval.methods`` on ``cfg.eval.dataset``; write ``table4.*``,
    ``table4_samples.jsonl`` and ``table4_figure.png``. Returns ``{"<method>/<fg|bg>_<metric>": mean}``."""
    from hydra.utils import instantiate

    out = Path(cfg.paths.output_dir)
    ev = cfg.eval
    methods = {name: instantiate(spec) for name, spec in (ev.methods or {}).items() if spec is not None}
    if not methods:
        raise ValueError("eval=table4: no methods configured (eval.methods)")
    dataset = instantiate(ev.dataset)
    total = len(dataset) if ev.get("limit") is None else min(len(dataset), int(ev.limit))
    lpips = extractors.lpips(cfg) if ev.get("lpips", True) else None
    records = ResultLog(out / "table4_samples.jsonl")
    fig_dir, fig_keys, corrupt = out / "table4_figure", [], 0
    keys: set[str] = (
        set()
    )  # this run's samples: records of other samples (e.g. an earlier, longer run) stay out
    for index in tqdm(range(total), desc="table4", disable=not ev.get("progress", True)):
        key = dataset.key(index) if hasattr(dataset, "key") else None
        if key is not None:
            keys.add(key)
        want_fig = index < int(ev.figure_samples)
        if key is not None and not want_fig and all(records.done(m, key) for m in methods):
            continue
        try:
            sample = dataset[index]
        except Exception as e:  # a corrupt sample is skipped and counted, not fatal
            log.warning("table4: skipping sample %d (%s: %s)", index, type(e).__name__, e)
            corrupt += 1
            continue
        key = sample["key"]
        keys.add(key)
        if want_fig:
            fig_keys.append(key)
        preds, target_features = {}, None
        for name, method in methods.items():
            if records.done(name, key) and not (want_fig and not (fig_dir / name / f"{key}.png").is_file()):
                continue
            generator = torch.Generator().manual_seed(int(cfg.seed) + zlib.crc32(key.encode()))
            kwargs = {"alpha": sample["alpha"]} if getattr(method, "matting", True) is None else {}
            start = time.perf_counter()
            try:
                pred = method(sample["composite"], sample["trimap"], generator, **kwargs)
            except ValueError as e:  # the method cannot handle this input (e.g. no definite foreground)
                log.warning("table4: %s failed on %s: %s", name, key, e)
                records.append(name, key, failed=str(e))
                continue
            seconds = time.perf_counter() - start
            preds[name] = pred
            if not records.done(name, key):
                if lpips is not None and target_features is None:  # ground truth's LPIPS features, once
                    target_features = lpips.features(
                        torch.stack([sample["foreground"], sample["background"]])
                    )
                scores = score_layers(pred, sample, lpips, ev.get("mask"), target_features)
                records.append(name, key, seconds=seconds, **scores)
        if want_fig and preds:
            _save_figure_inputs(fig_dir, key, sample, preds)
    rows = []
    for name in methods:
        mine = [r for r in records.of(name) if r["key"] in keys]
        recs = [r for r in mine if not r.get("failed")]
        row = {"method": name, "count": len(recs), "failed": len(mine) - len(recs)}
        for col in [c for c, _ in COLUMNS[1:]] + ["seconds"]:
            vals = [r[col] for r in recs if r.get(col) is not None]
            row[col] = sum(vals) / len(vals) if vals else None
        rows.append(row)
    region = "pixels with alpha > 0" if ev.get("mask") == "alpha" else "whole image, all 3 channels"
    notes = (
        f"Means over {total} test composites ({corrupt} unreadable skipped; `failed` = composites a method "
        f"could not process, left out of its means); values in [0,1], {region}; "
        "SAD = sum |d| / 1e3 per image. `seconds` = method time per composite (not in the paper)."
    )
    write_tables(rows, out, "table4", COLUMNS, "Table 4: layer decomposition vs ground truth", notes=notes)
    fig = _figure(fig_dir, fig_keys, list(methods), out / "table4_figure.png")
    log_results(cfg, "table4", rows, {"figure": fig} if fig else None)
    return {f"{r['method']}/{c}": r[c] for r in rows for c, _ in COLUMNS[1:]}
