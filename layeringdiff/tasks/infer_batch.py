"""Batch text mode of infer.py: ``prompts=FILE`` (JSON lines) into ``out=DIR``, one folder per
line, resumable: finished folders are skipped, a bad line is reported and the batch goes on."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from layeringdiff.errors import OutputExistsError
from layeringdiff.files import atomic_write_bytes
from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.request import check_seed
from layeringdiff.tasks.infer_inputs import request_from_item
from layeringdiff.tasks.infer_run import generation_settings, run_request

log = logging.getLogger(__name__)

BATCH_KEYS = ("prompt", "foreground_indices", "foreground", "negative_prompt")


def read_prompt_file(path: str | Path) -> list[dict]:
    """Batch requests: JSON lines with ``prompt`` and ``foreground_indices`` (or ``foreground``),
    optional ``id`` (output folder name; default the 0-based line number, 5 digits),
    ``seed`` (default: config seed + line number) and ``negative_prompt``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompts={path}: no such file")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n + 1}: not a JSON object ({e.msg})") from None
        if not isinstance(item, dict) or "prompt" not in item:
            raise InputError(f"{path}:{n + 1}: each line must be a JSON object with a 'prompt'")
        item.setdefault("id", f"{n:05d}")
        item.setdefault("line", n)
        if not str(item["id"]) or "/" in str(item["id"]) or str(item["id"]).startswith("."):
            raise InputError(f"{path}:{n + 1}: id {item['id']!r} is not a usable folder name")
        items.append(item)
    return items


def split_done(items: list[dict], out_root: Path) -> tuple[list[dict], int, list[dict]]:
    """(items to run, how many are finished, items refused): a folder made from another prompt
    under the same id is never overwritten and never counted as done."""
    todo, finished, refused = [], 0, []
    for item in items:
        meta = out_root / str(item["id"]) / "meta.json"
        if not meta.is_file():
            todo.append(item)
        elif json.loads(meta.read_text(encoding="utf-8")).get("prompt") == item["prompt"]:
            finished += 1
        else:
            error = f"{meta.parent} holds the output of another prompt; move it away to regenerate"
            log.warning("skipped %s: %s", item["id"], error)
            refused.append({"id": item["id"], "error": error})
    return todo, finished, refused


def infer_batch(cfg: DictConfig, out_root: Path, make_pipeline) -> dict:
    """Run every unfinished line of ``cfg.prompts``; write ``batch_summary.json`` into ``out_root``.

    Args:
        make_pipeline: ``() -> pipeline`` (checks the weights, loads the models), called once
            when there is something to run.
    """
    from tqdm.auto import tqdm

    items = read_prompt_file(cfg.prompts)
    out_root.mkdir(parents=True, exist_ok=True)
    todo, finished, failed = split_done(items, out_root)
    log.info("%d prompts, %d already done, %d to run into %s", len(items), finished, len(todo), out_root)
    done = []
    if todo:
        generation_settings(cfg)  # settings of the whole batch: a bad one stops it before any work
        base_seed = check_seed(cfg.seed)
        pipe = make_pipeline()
        pipe.set_progress_bar(False)
        for item in tqdm(todo, desc="prompts", disable=not cfg.progress):
            try:  # a bad seed on one line fails that line only
                seed = check_seed(item["seed"]) if "seed" in item else check_seed(base_seed + item["line"])
                request = request_from_item({k: item.get(k) for k in BATCH_KEYS})
                # the whole line goes into meta.json's inputs (Tables 1-3 read e.g. background_prompt there)
                done.append(str(run_request(pipe, cfg, item, request, out_root / str(item["id"]), seed)))
            # one bad prompt, no foreground found, or a non-empty folder without meta.json in the
            # way: skipped and counted, the rest of the batch goes on
            except (InputError, OutputExistsError) as e:
                log.warning("skipped %s: %s", item["id"], e)
                failed.append({"id": item["id"], "error": str(e)})
    summary = {"total": len(items), "skipped_done": finished, "written": len(done), "failed": failed}
    atomic_write_bytes(out_root / "batch_summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return {"out_dirs": done, **summary, "summary_file": str(out_root / "batch_summary.json")}


def batch_failure(result: dict) -> str | None:
    """The one line ``infer.py`` exits non-zero with when items of a batch failed (else ``None``)."""
    failed = result.get("failed") or []
    if not failed:
        return None
    first = failed[0]
    return (
        f"{len(failed)} of {result.get('total', '?')} prompts failed (first: {first['id']}: {first['error']}); "
        f"the list is in {result.get('summary_file', 'batch_summary.json')}"
    )
