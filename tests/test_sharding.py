"""shard=I/N: parsing, the torchrun / SLURM variables, explicit-wins, device per local rank."""

import pytest

from layeringdiff.errors import ConfigError
from layeringdiff.sharding import Shard, local_device, parse_shard, resolve_shard, shard_from_env


def test_parse_and_select():
    s = parse_shard("1/3")
    assert (s.index, s.count, s.tag) == (1, 3, "shard-0001-of-0003")
    assert s.select(list(range(8))) == [1, 4, 7] and s.owns(4) and not s.owns(5)
    every = [x for i in range(3) for x in parse_shard(f"{i}/3").select(list(range(8)))]
    assert sorted(every) == list(range(8))  # the shards together cover each item once
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ConfigError, match="shard"):
            parse_shard(bad)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, (0, 1)),
        ({"RANK": "3", "WORLD_SIZE": "8", "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, (3, 8)),
        ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8"}, (5, 8)),
        ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "8"}, (5, 8)),
        ({"SLURM_PROCID": "7", "SLURM_NTASKS": "64"}, (7, 64)),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, (0, 1)),
        (
            {
                "SLURM_ARRAY_TASK_ID": "2",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_PROCID": "1",
                "SLURM_NTASKS": "8",
            },
            (17, 32),
        ),
    ],
)
def test_environment(env, expected):
    s = shard_from_env(env)
    assert (s.index, s.count) == expected


def test_explicit_wins_and_bad_environment_is_one_line():
    env = {"RANK": "1", "WORLD_SIZE": "2"}
    assert str(resolve_shard("0/1", env)) == "0/1"
    assert str(resolve_shard(None, env)) == "1/2"
    with pytest.raises(ConfigError, match="RANK='x'"):
        shard_from_env({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="0 <= I < N"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_local_device():
    assert local_device("cuda", {"LOCAL_RANK": "3"}, gpus=8) == "cuda:3"
    assert local_device("cuda", {"SLURM_LOCALID": "2"}, gpus=8) == "cuda:2"
    assert local_device("cuda", {"LOCAL_RANK": "9"}, gpus=8) == "cuda:1"
    assert local_device("cuda", {"SLURM_LOCALID": "5"}, gpus=1) == "cuda"  # one GPU per task
    assert local_device("cuda", {}, gpus=8) == "cuda"
    assert local_device("cuda:1", {"LOCAL_RANK": "3"}, gpus=8) == "cuda:1"
    assert local_device("cpu", {"LOCAL_RANK": "3"}, gpus=8) == "cpu"
    assert Shard().whole
