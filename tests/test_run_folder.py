"""An unusable log folder ends an entry point in one line (not a traceback from inside Hydra)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from layeringdiff.tasks.run_folder import unusable_folder

ROOT = Path(__file__).resolve().parents[1]


def test_unusable_folder_names_the_blocking_path(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert unusable_folder(tmp_path / "new" / "deeper") is None
    assert not (tmp_path / "new").exists()  # nothing created
    assert unusable_folder(blocker / "logs" / "run") == f"{blocker} is a file, not a folder"


def test_entry_point_with_an_unwritable_log_dir_exits_1_in_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), "eval=table2", f"paths.log_dir={blocker}/logs"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot create the run folder"), proc.stderr[-1500:]
    assert f"{blocker} is a file, not a folder" in lines[0] and "Traceback" not in proc.stderr
