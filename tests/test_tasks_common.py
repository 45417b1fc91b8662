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
            raise MissingWeightsError("SAM: no folder at /w/sam\nsecond line")
        except MissingWeightsError as e:
            raise InstantiationException("Error in call to target 'x':\nMissingWeightsError(...)") from e

    with pytest.raises(SystemExit) as exit_info:
        run_or_exit(wrapped, OmegaConf.create({}))
    assert str(exit_info.value.code) == "error: SAM: no folder at /w/sam"
    assert run_or_exit(lambda cfg: cfg.a + 1, OmegaConf.create({"a": 1})) == 2


@pytest.mark.parametrize("error", [ValueError("a bug, not bad input"), KeyError("k"), FileNotFoundError("x")])
def test_run_or_exit_lets_other_errors_through_and_logs_their_traceback(tmp_path, error):
    """Only UserError is one line: a ValueError / KeyError / FileNotFoundError is a bug and keeps its
    traceback, also in the run log file."""
    import logging

    from layeringdiff.tasks.common import run_or_exit

    def bug(cfg):
        raise error

    log_file = tmp_path / "run.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        with pytest.raises(type(error)):
            run_or_exit(bug, OmegaConf.create({}))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = log_file.read_text()
    assert "Traceback" in text and f"{type(error).__name__}" in text and "in bug" in text


def test_find_user_error_follows_causes_not_contexts():
    from layeringdiff.errors import ConfigError, UserError, find_user_error

    inner = ConfigError("bad setting")
    try:
        raise RuntimeError("while building") from inner
    except RuntimeError as outer:
        assert find_user_error(outer) is inner
    try:
        try:
            raise inner
        except ConfigError:
            raise KeyError("a bug while handling it")  # noqa: B904 (the implicit context is the point)
    except KeyError as bug:
        assert find_user_error(bug) is None  # the bug is not hidden behind the user's error
    plain = ValueError("x")
    assert find_user_error(plain) is None and not isinstance(plain, UserError)


def _run_entry_point(tmp_path, script, *overrides):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(root / script), f"hydra.run.dir={run_dir}", f"paths.log_dir={tmp_path}",
           f"paths.cache_dir={tmp_path}", *overrides]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    return proc, run_dir


def test_evaluate_py_user_error_is_one_line_and_a_bug_keeps_its_traceback(tmp_path):
    proc, _ = _run_entry_point(tmp_path, "evaluate.py", "eval.runner=no.such.function")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: evaluate: eval.runner=no.such.function")
    assert "Traceback" not in proc.stderr
    # a runner that raises a plain ValueError from inside the task: a bug, not a user error
    proc, run_dir = _run_entry_point(tmp_path, "evaluate.py", "eval.runner=ipaddress.ip_address")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError" in proc.stderr
    log_text = (run_dir / "evaluate.log").read_text()
    assert "Traceback" in log_text and "ValueError" in log_text and "does not appear to be" in log_text
