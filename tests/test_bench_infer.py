"""experiments/bench_infer.py stays runnable and times the real classical path (it once went stale:
it timed Telea while `python infer.py` ran FSR)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_classical_benchmark_runs_old_and_new_paths():
    out = subprocess.run(
        [sys.executable, "experiments/bench_infer.py", "--size", "64", "--repeats", "1"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    for row in ("trimap from the mask", "closed-form matting", "Germer et al.", "projection to Eq. 1"):
        assert row in out, row
    assert "inpainting the hidden background (alpha > 0.95; fsr fast" in out  # the configured inpainter
    assert "**total, mask entry" in out and "new path total:" in out and "old vs new outputs" in out
    assert out.count("machine: ") == 2
