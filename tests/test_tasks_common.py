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
        _checkpoint(p, step=i, age=-i)
    assert resolve_ckpt_path("last", tmp_path, current) == str(new)
    assert resolve_ckpt_path(str(tmp_path / "runs" / "a"), tmp_path) == str(old)
    assert resolve_ckpt_path(None, tmp_path) is None


def _checkpoint(path, step: int, age: float = 0.0) -> None:
    """A small real checkpoint file (a torch.save zip) ``age`` seconds old."""
    import torch

    torch.save({"global_step": step, "state_dict": {"w": torch.full((64,), float(step))}}, path)
    os.utime(path, (time.time() - age, time.time() - age))


@pytest.mark.parametrize("torn", ["empty", "truncated"])
def test_resume_skips_a_torn_last_ckpt_for_the_newest_that_loads(tmp_path, torn, caplog):
    run = tmp_path / "runs" / "a"
    (run / "checkpoints").mkdir(parents=True)
    step2, step4 = run / "checkpoints" / "step_0000002.ckpt", run / "checkpoints" / "step_0000004.ckpt"
    _checkpoint(step2, 2, age=30)
    _checkpoint(step4, 4, age=20)
    last = run / "checkpoints" / "last.ckpt"
    _checkpoint(last, 6, age=10)
    data = last.read_bytes()
    last.write_bytes(b"" if torn == "empty" else data[: len(data) // 2])  # killed while copying
    with caplog.at_level("WARNING"):
        assert resolve_ckpt_path("last", tmp_path / "runs") == str(step4)
        assert resolve_ckpt_path(str(run), tmp_path / "runs") == str(step4)  # a run folder
        assert resolve_ckpt_path(str(last), tmp_path / "runs") == str(step4)  # the file itself
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 3 and all(str(last) in m and "\n" not in m for m in skipped)
    assert ("empty (0 bytes)" if torn == "empty" else "truncated") in skipped[0]
    import torch

    assert torch.load(step4, weights_only=True)["global_step"] == 4
    # nothing loads: one line, not a traceback from deep inside the trainer
    from layeringdiff.training.checkpoints import CorruptCheckpointError

    for p in (step2, step4):
        p.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="ckpt_path=last: no checkpoint loads"):
        resolve_ckpt_path("last", tmp_path / "runs")


def test_atomic_checkpoint_io_leaves_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    import torch

    from layeringdiff.training.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)
    assert io.load_checkpoint(path)["global_step"] == 1

    def killed(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the write dies half-way

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1  # the old checkpoint, whole
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary left


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
