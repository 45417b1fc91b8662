"""``eval=generate``: batch text-to-layers generation over a prompt file, through ``infer.py``'s batch mode.

Composes ``configs/infer.yaml`` with ``prompts=<file> out=<run>/samples`` plus
``eval.infer_overrides`` and calls :func:`layeringdiff.tasks.infer.infer`. The output folder
(one output folder per prompt id, docs/architecture.md) is what ``eval=table1`` / ``eval=table2`` / the user study
score. Finished folders are skipped, so re-running with the same run folder resumes.

``shard=I/N`` generates every N-th prompt (with its own line number, so its seed and folder are
the ones one run gives it) into the shared ``samples`` folder; ``merge=true`` (or any unsharded run
in that run folder) then generates whatever no shard finished and writes ``generate_summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from layeringdiff.errors import MissingFileError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def compose_infer(overrides: list[str]) -> DictConfig:
    """The ``infer.yaml`` config with overrides, inside a running Hydra app or outside one."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose("infer.yaml", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("infer.yaml", overrides=overrides)


def shard_prompts(prompts: Path, path: Path, shard) -> Path:
    """Write this shard's prompt lines (every N-th request) to ``path``, each with its ``id`` and
    ``line`` made explicit: infer derives the folder name and the seed from them."""
    from layeringdiff.files import atomic_write_bytes
    from layeringdiff.tasks.infer_batch import read_prompt_file

    items = shard.select(read_prompt_file(prompts))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, "".join(json.dumps(item) + "\n" for item in items).encode("utf-8"))
    return path


def run(cfg: DictConfig) -> dict:
    """Generate layers for ``eval.prompts`` (first ``eval.limit`` lines) into ``<run>/samples``.

    Returns:
        infer's batch summary (``total``, ``skipped_done``, ``written``, ``failed``) and ``samples_dir``.
    """
    from layeringdiff.evaluation.sharding import eval_shard, shard_result
    from layeringdiff.tasks.infer import infer

    ev, out = cfg.eval, Path(cfg.paths.output_dir)
    prompts = Path(ev.prompts)
    if not prompts.is_file():
        raise MissingFileError(f"eval.prompts: no prompt file at {prompts}")
    if ev.get("limit") is not None:
        lines = [line for line in prompts.read_text().splitlines() if line.strip()][: int(ev.limit)]
        prompts = out / "prompts.jsonl"
        prompts.write_text("".join(line + "\n" for line in lines))
    shard = eval_shard(cfg)
    if not shard.whole:
        prompts = shard_prompts(prompts, out / "shards" / f"prompts.{shard.tag}.jsonl", shard)
    samples = Path(ev.get("out") or out / "samples")
    overrides = [
        f"prompts={prompts}",
        f"out={samples}",
        f"paths.output_dir={out / 'infer' / (shard.tag if not shard.whole else '')}",
        f"paths.cache_dir={cfg.paths.cache_dir}",
        f"seed={cfg.seed}",
        *list(ev.get("infer_overrides") or []),
    ]
    result = infer(compose_infer(overrides))
    summary = {k: result[k] for k in ("total", "skipped_done", "written") if k in result}
    summary["failed"] = len(result.get("failed", []))
    summary["samples_dir"] = str(samples)
    if not shard.whole:
        (out / "shards" / f"generate_summary.{shard.tag}.json").write_text(
            json.dumps(summary, indent=2) + "\n"
        )
        return {**shard_result(shard, "generate", summary.get("total", 0)), **summary}
    (out / "generate_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
