"""The one atomic-write helper: old file kept and no temporary left on failure; umask permissions."""

from __future__ import annotations

import os
import stat

import pytest

from layeringdiff.files import atomic_dir, atomic_file, atomic_write_bytes, record_settings, settings_diff


def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def test_atomic_file_publishes_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_atomic_file_failure_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"half")
            assert target.read_bytes() == b"old"  # nothing visible before the rename
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_dir_publishes_with_umask_permissions(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        assert not target.exists()
        (tmp / "config.json").write_text("{}")
    assert (target / "config.json").read_text() == "{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~_umask()  # not mkdtemp's 0700
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.fixture
def old_model(tmp_path):
    """A published folder ``model/`` holding ``weights`` = b"old"."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights").write_bytes(b"old")
    return tmp_path / "model"


@pytest.mark.parametrize(
    "replace, interruption",
    [(True, KeyboardInterrupt), (False, OSError)],  # a failure inside; a rename onto a full folder
)
def test_atomic_dir_failure_keeps_old_folder_and_leaves_no_temporary(old_model, replace, interruption):
    with pytest.raises(interruption):
        with atomic_dir(old_model, replace=replace) as tmp:
            (tmp / "weights").write_bytes(b"half")
            if interruption is KeyboardInterrupt:
                raise KeyboardInterrupt
    assert (old_model / "weights").read_bytes() == b"old"
    assert [p.name for p in old_model.parent.iterdir()] == ["model"]


def test_atomic_dir_replaces_a_non_empty_folder_when_asked(old_model):
    target = old_model
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "weights").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["weights"]
    assert (target / "weights").read_bytes() == b"new"


def test_atomic_dir_takes_the_place_of_an_empty_folder(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("a")
    assert [p.name for p in target.iterdir()] == ["a.txt"]


def test_record_settings_writes_once_then_refuses_other_settings(tmp_path):
    path = tmp_path / "cache" / "cache_info.json"
    record_settings(path, {"vae": "a", "size": 64})
    first = path.read_bytes()
    record_settings(path, {"size": 64, "vae": "a"})  # same settings, any order: accepted, unchanged
    assert path.read_bytes() == first
    with pytest.raises(SystemExit, match=r"other settings \{'size': \(64, 128\)\}"):
        record_settings(path, {"vae": "a", "size": 128}, error=SystemExit)
    with pytest.raises(ValueError, match="'extra': \\(None, 1\\)"):
        record_settings(path, {"vae": "a", "size": 64, "extra": 1})
    assert path.read_bytes() == first


def test_settings_diff_sees_keys_missing_on_either_side():
    assert settings_diff({"a": 1, "b": 2}, {"a": 1, "c": 3}) == {"b": (2, None), "c": (None, 3)}
    assert settings_diff({"a": 1}, {"a": 1}) == {}


# ------------------------------------------------------------ orphaned temporaries of killed writers

KILLED_WRITER = """
import os, sys
from layeringdiff.files import atomic_dir, atomic_file
folder = sys.argv[1]
dir_cm, file_cm = atomic_dir(os.path.join(folder, "export")), atomic_file(os.path.join(folder, "table.csv"))
open(os.path.join(dir_cm.__enter__(), "weights"), "wb").write(b"half")
file_cm.__enter__().write_bytes(b"half")
os._exit(9)  # killed mid-write: no cleanup runs
"""


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_writers_temporaries_are_removed_by_the_next_writer(tmp_path, monkeypatch):
    import subprocess
    import sys

    import layeringdiff.files as files

    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], check=False)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(
        n.startswith((".export.", ".table.csv.")) and n.endswith(".tmp") for n in left
    )
    monkeypatch.setattr(files, "_cleaned", set())  # a fresh process: this folder not cleaned yet
    atomic_write_bytes(tmp_path / "other.bin", b"x")  # the next run writing there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.bin"]


def test_live_or_foreign_temporaries_are_kept_until_stale(tmp_path):
    import subprocess
    import sys
    import time

    from layeringdiff.files import _HOST, clean_stale_temporaries

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f".a.png.abcd1234.{_HOST}-{_dead_pid()}.tmp",
            "live": f".b.png.abcd1234.{_HOST}-{sleeper.pid}.tmp",  # a concurrent writer
            "mine": f".c.png.abcd1234.{_HOST}-{os.getpid()}.tmp",  # this process's other thread
            "other_host": f".d.png.abcd1234.ffffff-{_dead_pid()}.tmp",  # pid not checkable here
            "old_style": ".e.png.abcd1234.tmp",  # before the pid was in the name
            "not_ours": ".cache.tmp",
        }
        for key, name in names.items():
            (tmp_path / name).mkdir() if key == "dead" else (tmp_path / name).write_bytes(b"")
        (tmp_path / names["dead"] / "inner").write_bytes(b"x")
        removed = clean_stale_temporaries(tmp_path)
        assert [p.name for p in removed] == [names["dead"]]
        old = time.time() - 2 * 24 * 3600  # older than STALE_TEMP_AGE: removed whoever made them
        for key in ("live", "other_host", "old_style", "not_ours"):
            os.utime(tmp_path / names[key], (old, old))
        removed = clean_stale_temporaries(tmp_path)
        assert sorted(p.name for p in removed) == sorted(
            names[k] for k in ("live", "other_host", "old_style")
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["mine"], names["not_ours"]])
    finally:
        sleeper.kill()
        sleeper.wait()
