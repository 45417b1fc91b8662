"""Table 1: foreground, background and composite quality of each method's output folders.

Per layer (FG = foreground composited over the matte colour, BG, composite): FID and KID
against a reference set (MAGICK for FG, COCO for BG and composite), CLIP score against the
layer's prompt (FG prompt, background prompt, full prompt), and FG-MIoU for FG and BG
(:mod:`layeringdiff.metrics.miou`). Units as printed in the paper: KID raw (not x1e3), FG-MIoU
a fraction in [0, 1]. Per-sample features and scores are kept (JSONL + one ``.npz`` per sample)
so an interrupted run resumes.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from layeringdiff.errors import ConfigError, MissingFileError
from layeringdiff.evaluation.outputs import SampleFolder, list_samples
from layeringdiff.evaluation.records import ResultLog
from layeringdiff.evaluation.report import write_tables
from layeringdiff.evaluation.report_wandb import log_results
from layeringdiff.evaluation.sharding import eval_shard, open_records, shard_result
from layeringdiff.files import atomic_write_bytes
from layeringdiff.images import ImageReadError
from layeringdiff.metrics import extractors
from layeringdiff.metrics.fid import (
    KID_SCALE,
    frechet_distance,
    image_features,
    kernel_inception_distance,
    over_matte,
    reference_features,
)
from layeringdiff.metrics.miou import layer_iou

log = logging.getLogger(__name__)

SCORED_IMAGES = {"fg": "foreground", "bg": "background", "comp": "composite"}
COLUMNS = [("method", "Method")]
for _short, _label in (("fg", "FG"), ("bg", "BG"), ("comp", "Composite")):
    COLUMNS += [(f"{_short}_fid", f"{_label} FID↓"), (f"{_short}_kid", f"{_label} KID↓")]
    COLUMNS += [(f"{_short}_clip", f"{_label} CLIP↑")]
    if _short != "comp":
        COLUMNS += [(f"{_short}_miou", f"{_label} FG-MIoU{'↑' if _short == 'fg' else '↓'}")]


def load_prompts(path: str | None) -> dict[str, dict]:
    """``{id: record}`` from a prompt JSONL file (see data/prompts/README.md); ``{}`` without one."""
    if not path:
        return {}
    records = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
                records[rec["id"]] = rec
            except (json.JSONDecodeError, KeyError):
                raise ConfigError(f"{path}:{n}: not a prompt record with an 'id'") from None
    return records


def sample_prompts(sample: SampleFolder, prompts: dict[str, dict]) -> dict[str, str]:
    """The prompts of one output folder: meta.json first (its top level, then the batch record it was
    generated from, ``meta["inputs"]``), then the prompt file by folder name."""
    meta, rec = sample.meta(), prompts.get(sample.key, {})
    inputs = meta.get("inputs") if isinstance(meta.get("inputs"), dict) else {}
    fg_list = meta.get("foreground_prompts") or [None]  # the pipeline's meta.json: one per layer

    def first(*keys: str) -> str:
        return next(
            (d[k] for d in (meta, inputs, rec) for k in keys if isinstance(d.get(k), str) and d[k]), ""
        )

    prompt = first("prompt")
    fg = fg_list[0] or first("foreground_prompt", "fg_prompt")
    bg = first("background_prompt", "bg_prompt")
    return {"comp": prompt, "fg": fg, "bg": bg}


def _layer_images(sample: SampleFolder, matte) -> dict:
    from PIL import Image

    fg = sample.image("foreground")
    if fg.mode not in ("RGBA", "LA") and (sample.path / "alpha.png").is_file():
        # an RGB foreground with its alpha in alpha.png (e.g. a method run elsewhere): same treatment
        a = Image.fromarray(np.rint(sample.alpha() * 255).astype(np.uint8), "L")
        if a.size != fg.size:
            raise ValueError(f"{sample.path}: alpha.png {a.size} and foreground {fg.size} differ in size")
        fg = fg.convert("RGB")
        fg.putalpha(a)
    fg = Image.fromarray(over_matte(fg, matte))
    return {
        "fg": fg,
        "bg": sample.image("background").convert("RGB"),
        "comp": sample.image("composite").convert("RGB"),
    }


def _save_npz(path: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _score_method(name, samples, scorers, records: ResultLog, feat_dir: Path, matte, prompts) -> None:
    """Per-sample Inception features (saved), CLIP scores and FG/BG-MIoU of one method's folders."""
    inception, clip, segment = scorers
    bad = 0
    for s in samples:
        if records.done(name, s.key):
            continue
        try:
            images, alpha, texts = _layer_images(s, matte), s.alpha(), sample_prompts(s, prompts)
        except (ImageReadError, OSError, ValueError) as e:
            log.warning("table1: skipping %s (%s)", s.path, e)
            bad += 1
            continue
        values = {}
        if inception is not None:
            feats = {k: image_features([images[k]], inception)[0] for k in SCORED_IMAGES}
            _save_npz(feat_dir / f"{s.key}.npz", **feats)
        if clip is not None:
            for k in SCORED_IMAGES:
                values[f"{k}_clip"] = float(clip.score([images[k]], [texts[k]])[0]) if texts[k] else None
        if segment is not None and texts["fg"]:
            values["fg_miou"] = layer_iou(segment, images["fg"], texts["fg"], alpha)
            values["bg_miou"] = layer_iou(segment, images["bg"], texts["fg"], alpha)
        records.append(name, s.key, **values)
    if bad:
        log.warning("table1: %s: %d unreadable sample folder(s) skipped", name, bad)


def _method_row(name: str, recs: list[dict], ref_feats: dict, feat_dir: Path, cfg: DictConfig) -> dict:
    """One table row: FID/KID against the reference features, mean CLIP and MIoU of the records."""
    ev = cfg.eval
    row: dict = {"method": name, "count": len(recs)}
    for k in SCORED_IMAGES:
        if k in ref_feats:
            feats = np.stack([np.load(feat_dir / f"{r['key']}.npz")[k] for r in recs])
            row[f"{k}_fid"] = frechet_distance(feats, ref_feats[k])
            kid = kernel_inception_distance(
                feats,
                ref_feats[k],
                seed=int(cfg.seed),
                num_subsets=int(ev.kid_subsets),
                max_subset_size=int(ev.kid_subset_size),
            )
            row[f"{k}_kid"] = kid / KID_SCALE  # x1e3 from the metric; raw in the table, as the paper
        for metric, scale in (("clip", 1.0), ("miou", 1.0)):  # MIoU a fraction, as the paper
            vals = [r[f"{k}_{metric}"] for r in recs if r.get(f"{k}_{metric}") is not None]
            if vals:
                row[f"{k}_{metric}"] = scale * float(np.mean(vals))
    # FG-MIoU ran on these samples but their alpha had no pixel above 0.5: left out, counted
    row["miou_empty_alpha"] = sum(1 for r in recs if "fg_miou" in r and r["fg_miou"] is None)
    return row


def _record_settings(cfg: DictConfig, methods: dict, inception: bool) -> dict[str, dict]:
    """Per method, what its per-sample records depend on (a rerun under other settings is refused)."""
    ev = cfg.eval
    shared = {
        "metrics": cfg.metrics,
        "prompts": ev.get("prompts"),
        "clip": ev.get("clip", True),
        "segmenter": ev.get("segmenter"),
        "inception": inception,
    }
    return {name: {**shared, "folder": str(Path(folder).resolve())} for name, folder in methods.items()}


def run(cfg: DictConfig) -> dict:
    """Score every folder in ``cfg.eval.methods``; write ``table1.*`` into the run folder."""
    from hydra.utils import instantiate

    ev, out = cfg.eval, Path(cfg.paths.output_dir)
    methods = dict(ev.methods or {})
    if not methods:
        raise ConfigError("eval=table1: give at least one output folder, e.g. eval.methods.ours=DIR")
    listing = {name: list_samples(folder) for name, folder in methods.items()}
    matte = tuple(cfg.metrics.matte)
    refs = {k: ev.reference.get(k) for k in SCORED_IMAGES}
    for k, folder in refs.items():  # fail before any work on a missing reference folder
        if folder and not Path(folder).is_dir():
            raise MissingFileError(f"eval.reference.{k}: no folder at {folder}")
    inception = extractors.inception(cfg) if any(refs.values()) else None
    clip = extractors.clip(cfg) if ev.get("clip", True) else None
    segment = instantiate(ev.segmenter) if ev.get("segmenter") else None
    prompts = load_prompts(ev.get("prompts"))
    shard = eval_shard(cfg)  # sharded: every N-th output folder of each method
    records = open_records(out, "table1", shard, _record_settings(cfg, methods, any(refs.values())))
    feat_dir = out / "table1_features"
    scorers = (inception, clip, segment)
    for name, samples in listing.items():
        progress = tqdm(shard.select(samples), desc=f"table1 {name}", disable=not ev.get("progress", True))
        _score_method(name, progress, scorers, records, feat_dir / name, matte, prompts)
    if not shard.whole:
        return shard_result(shard, "table1", sum(len(shard.select(s)) for s in listing.values()))

    ref_feats = {}
    for k, folder in refs.items():
        if folder:
            ref_feats[k] = reference_features(
                folder, inception, ev.reference.cache_dir, matte, ev.reference.get("num"), int(cfg.seed)
            )
    rows = []
    for name in methods:
        listed = {s.key for s in listing[name]}  # records of folders no longer listed stay out
        recs = [r for r in records.of(name) if r["key"] in listed]
        rows.append(_method_row(name, recs, ref_feats, feat_dir / name, cfg))
    notes = (
        "Units as printed in the paper: FID, KID raw (not x1e3), FG-MIoU a fraction in [0, 1]. "
        "FID/KID by clean-fid (clean resize) vs "
        + ", ".join(f"{k}: {Path(v).name}" for k, v in refs.items() if v)
        + f"; FG over matte {list(matte)}. CLIP = 100*max(cos,0), open_clip. FG-MIoU: Grounding DINO box for the "
        "FG prompt -> SAM mask -> IoU with alpha > 0.5 (FG: higher is better; BG: lower is better); "
        "samples with an empty alpha are left out (`miou_empty_alpha` in the CSV/JSON)."
    )
    write_tables(  # 4 decimals: raw KID and fractional FG-MIoU need them
        rows, out, "table1", COLUMNS, "Table 1: foreground, background and composite quality", 4, notes
    )
    log_results(cfg, "table1", rows)
    return {f"{r['method']}/{c}": r[c] for r in rows for c, _ in COLUMNS[1:] if c in r}
