import os
import time

import pytest
from omegaconf import OmegaConf

from layeringdiff.tasks.common import instantiate_group, resolve_ckpt_path, save_resolved_config


def test_resolve_ckpt_path_last_picks_newest_earlier_run(tmp_path):
    old = tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt"
    new = tmp_path / "runs" / "b" / "checkpoints" / "last.ckpt"
    current = tmp_path / "runs" / "c"
    mine = current / "checkpoints" / "last.ckpt"
    for i, p in enumerate([old, new, mine]):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"0")
        os.utime(p, (time.time() + i, time.time() + i))
    assert resolve_ckpt_path("last", tmp_path, current) == str(new)
    assert resolve_ckpt_path(str(tmp_path / "runs" / "a"), tmp_path) == str(old)
    assert resolve_ckpt_path(None, tmp_path) is None


def test_resolve_ckpt_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=last"):
        resolve_ckpt_path("last", tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), tmp_path)


def test_save_resolved_config_resolves_interpolations(tmp_path):
    cfg = OmegaConf.create({"a": 3, "b": "${a}"})
    path = save_resolved_config(cfg, tmp_path)
    assert OmegaConf.load(path) == {"a": 3, "b": 3}


def test_instantiate_group_builds_each_target():
    group = OmegaConf.create(
        {"x": {"_target_": "builtins.dict", "k": 1}, "y": None, "z": {"_target_": "builtins.list"}}
    )
    assert instantiate_group(group) == [{"k": 1}, []]
    assert instantiate_group(None) == []


def test_run_or_exit_finds_the_user_error_along_the_cause_chain():
    from hydra.errors import InstantiationException

    from layeringdiff.tasks.common import run_or_exit
    from layeringdiff.weights import MissingWeightsError

    def wrapped(cfg):
        try:
            raise MissingWeightsError("SAM: no folder at /w/sam")
        except MissingWeightsError as e:
            raise InstantiationException("Error in call to target 'x':\nMissingWeightsError(...)") from e

    with pytest.raises(SystemExit) as exit_info:
        run_or_exit(wrapped, OmegaConf.create({}), (MissingWeightsError,))
    assert str(exit_info.value.code) == "error: SAM: no folder at /w/sam"

    def bug(cfg):
        raise KeyError("a programming error keeps its traceback")

    with pytest.raises(KeyError):
        run_or_exit(bug, OmegaConf.create({}), (MissingWeightsError,))
    assert run_or_exit(lambda cfg: cfg.a + 1, OmegaConf.create({"a": 1}), (ValueError,)) == 2
