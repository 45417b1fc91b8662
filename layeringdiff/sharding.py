"""Which part of an offline job this process does: ``shard=I/N`` (I counted from 0).

The offline jobs (latent cache, FBDD-output cache, ``eval=generate``, Table 1 scoring, Table 4)
split their work items by a fixed rule, so N processes with shards ``0/N .. N-1/N`` together do
exactly the work of one unsharded run, and a merge step builds the same result (docs/scale.md).

The shard is taken from, in this order:

1. the explicit setting (``--shard I/N`` / ``shard=I/N``; ``0/1`` runs everything and ignores
   the environment);
2. torchrun: ``RANK`` / ``WORLD_SIZE``;
3. SLURM: an array job (``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN``, of
   ``SLURM_ARRAY_TASK_COUNT``) times the tasks of each array element (``SLURM_PROCID`` of
   ``SLURM_NTASKS``); either alone works too;
4. otherwise ``0/1``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from layeringdiff.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count); ``source`` says where it came from."""

    index: int = 0
    count: int = 1
    source: str = "default"

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ConfigError(f"shard {self.index}/{self.count}: need 0 <= I < N (I counts from 0)")

    @property
    def whole(self) -> bool:
        """True when this process does all the work (``0/1``)."""
        return self.count == 1

    @property
    def tag(self) -> str:
        """File-name part naming this shard: ``shard-0003-of-0008``."""
        return f"shard-{self.index:04d}-of-{self.count:04d}"

    def owns(self, position: int) -> bool:
        """Whether work item number ``position`` (0-based, in the job's fixed order) is ours."""
        return position % self.count == self.index

    def select(self, items: Sequence[T]) -> list[T]:
        """Our items of ``items``: positions ``index, index + count, ...`` (round-robin)."""
        return list(items[self.index :: self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, name: str = "shard") -> Shard:
    """``"I/N"`` -> :class:`Shard`; anything else is a one-line :class:`ConfigError`."""
    m = _SPEC.match(str(text))
    if not m:
        raise ConfigError(f"{name}={text!r}: expected I/N, e.g. {name}=0/8 (I counts from 0)")
    return Shard(int(m.group(1)), int(m.group(2)), name)


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not a whole number") from None


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard:
    """The shard torchrun or SLURM assigned to this process (``0/1`` when neither did)."""
    env = os.environ if env is None else env
    rank, world = _env_int(env, "RANK"), _env_int(env, "WORLD_SIZE")
    if rank is not None and world is not None:
        return Shard(rank, world, "RANK/WORLD_SIZE")
    index, count, names = 0, 1, []
    task, tasks = _env_int(env, "SLURM_ARRAY_TASK_ID"), _env_int(env, "SLURM_ARRAY_TASK_COUNT")
    if task is not None and tasks is not None:
        index, count = task - (_env_int(env, "SLURM_ARRAY_TASK_MIN") or 0), tasks
        names.append("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
    procid, ntasks = _env_int(env, "SLURM_PROCID"), _env_int(env, "SLURM_NTASKS")
    if procid is not None and ntasks is not None and ntasks > 1:
        index, count = index * ntasks + procid, count * ntasks
        names.append("SLURM_PROCID/SLURM_NTASKS")
    return Shard(index, count, " x ".join(names) or "default")


def resolve_shard(explicit: str | None, env: Mapping[str, str] | None = None) -> Shard:
    """The explicit ``I/N`` when given, else :func:`shard_from_env`; logged when it is not ``0/1``."""
    shard = parse_shard(explicit) if explicit not in (None, "") else shard_from_env(env)
    if not shard.whole:
        log.info("shard %s (from %s)", shard, shard.source)
    return shard


def local_rank(env: Mapping[str, str] | None = None) -> int | None:
    """This process's index on its node: torchrun's ``LOCAL_RANK``, else ``SLURM_LOCALID``, else None."""
    env = os.environ if env is None else env
    local = _env_int(env, "LOCAL_RANK")
    return _env_int(env, "SLURM_LOCALID") if local is None else local


def local_device(device: str, env: Mapping[str, str] | None = None, gpus: int | None = None) -> str:
    """``cuda`` -> ``cuda:<local rank mod visible GPUs>``, so the processes of one node use one GPU
    each (with one visible GPU, e.g. SLURM's ``--gpus-per-task=1``, plain ``cuda``); any other
    device string is returned as given. Also makes that GPU the current one, so code that says
    ``cuda`` without an index lands there too."""
    local = local_rank(env)
    if device != "cuda" or local is None:
        return device
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus <= 1:
        return device
    index = local % gpus
    if gpus and env is None:
        import torch

        torch.cuda.set_device(index)
    return f"cuda:{index}"
