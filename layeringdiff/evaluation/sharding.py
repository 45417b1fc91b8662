"""``shard=I/N`` and ``merge=true`` for the evaluations that support them (generate, Table 1, Table 4).

A sharded run does every N-th work item (prompt line, output folder, test composite) and writes
its per-sample records to ``<run>/shards/<table>_samples.shard-I-of-N.jsonl`` (per-sample files,
such as Table 1 features, generated folders and Table 4 figure images, go where one run puts
them). It writes no table. An unsharded run in the same run folder (``merge=true``, which also
ignores torchrun / SLURM variables) first gathers every shard's records into
``<table>_samples.jsonl``, then does what no shard did and writes the table: the same table one
unsharded run writes. See docs/scale.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig

from layeringdiff.errors import ConfigError
from layeringdiff.evaluation.records import RecordsMismatchError, ResultLog
from layeringdiff.sharding import Shard, local_device, resolve_shard

log = logging.getLogger(__name__)

SHARDABLE = {
    "layeringdiff.evaluation.generate.run",
    "layeringdiff.evaluation.table1.run",
    "layeringdiff.evaluation.table4.run",
}
SHARD_DIR = "shards"


def eval_shard(cfg: DictConfig) -> Shard:
    """This run's shard: ``merge=true`` -> everything; else ``shard=I/N``, torchrun or SLURM variables.
    A sharded process on a node with several GPUs makes GPU ``LOCAL_RANK`` (``SLURM_LOCALID``) its
    current one, so ``device=cuda`` / ``auto`` puts each process on its own GPU."""
    if cfg.get("merge"):
        return Shard(source="merge")
    shard = resolve_shard(cfg.get("shard"))
    if not shard.whole:
        local_device("cuda")  # torchrun / srun: this process's GPU becomes the current one
    return shard


def check_supported(cfg: DictConfig, runner: str) -> None:
    """``shard`` / ``merge`` set explicitly for an evaluation that cannot split its work: one line."""
    if (cfg.get("shard") not in (None, "") or cfg.get("merge")) and runner not in SHARDABLE:
        raise ConfigError(
            f"shard= / merge= apply to eval=generate, table1 and table4, not to eval.runner={runner}"
        )


def shard_records(out: Path, table: str, shard: Shard) -> Path:
    """Where this run's per-sample records go."""
    if shard.whole:
        return out / f"{table}_samples.jsonl"
    return out / SHARD_DIR / f"{table}_samples.{shard.tag}.jsonl"


def open_records(out: Path, table: str, shard: Shard, settings: Mapping | None = None) -> ResultLog:
    """The record log of this run; an unsharded run first takes in every shard's records.

    Raises:
        RecordsMismatchError: a shard's records were made under other settings.
    """
    records = ResultLog(shard_records(out, table, shard), settings)
    if not shard.whole:
        return records
    gathered = 0
    for path in sorted((out / SHARD_DIR).glob(f"{table}_samples.shard-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                method, key = rec.pop("method"), rec.pop("key")
            except (json.JSONDecodeError, KeyError, AttributeError):
                continue  # a torn last line: that sample is simply not done
            if records.done(method, key):
                continue
            config = rec.pop("config", None)
            if method in records.hashes and config != records.hashes[method]:
                raise RecordsMismatchError(
                    f"{path}: records of '{method}' were made with other settings than this merge run's"
                )
            records.append(method, key, **rec)
            gathered += 1
    if gathered:
        log.info("%s: gathered %d record(s) from the shards", records.path.name, gathered)
    return records


def shard_result(shard: Shard, table: str, done: int) -> dict:
    """What a sharded run returns (and logs): no table, how to merge."""
    log.info(
        "%s shard %s: %d sample(s) in this shard done; after all shards: evaluate.py ... merge=true "
        "(same run folder) writes the table",
        table,
        shard,
        done,
    )
    return {"shard": str(shard), "samples": done}
