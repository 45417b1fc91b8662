"""The console of a training run: every log line once, no third-party noise, a closing summary."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "experiment=fbdd_smoke",
        f"paths.root_dir={tmp}",
        f"paths.log_dir={tmp / 'logs'}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "callbacks.model_checkpoint.every_n_train_steps=2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (log_file,) = (tmp / "logs" / "fbdd_smoke" / "runs").glob("*/fbdd_smoke.log")
    return proc.stdout, proc.stderr, log_file.read_text()


def messages(text: str) -> list[str]:
    """Log messages without the time stamp and logger prefix ("INFO: x" and "[..][..][INFO] - x")."""
    out = []
    for line in text.splitlines():
        m = re.match(r"(?:\[[^]]*\]){3} - (.*)|INFO: (.*)", line)
        if m:
            out.append(m.group(1) or m.group(2))
    return out


def test_every_log_message_appears_once(smoke_run):
    stdout, stderr, log_text = smoke_run
    console = messages(stdout) + messages(stderr)
    assert any("max_steps=2" in m for m in console), "Lightning's lines reach the console"
    repeated = sorted({m for m in console if console.count(m) > 1})
    assert not repeated, f"printed twice: {repeated}"
    in_file = messages(log_text)
    assert any("max_steps=2" in m for m in in_file)
    assert len(in_file) == len(set(in_file))


def test_no_third_party_noise_and_a_summary_at_the_end(smoke_run):
    stdout, stderr, log_text = smoke_run
    for text in (stdout, stderr, log_text):
        assert "💡" not in text and "\x1b[" not in text and "\r" not in text
        assert "is deprecated" not in text and "in eval mode at the start" not in text
        assert "Loading weights" not in text and "Writing model shards" not in text
    summary = messages(log_text)
    assert any(m.startswith("step 2/2: train/loss=") for m in summary), "loss lines without a bar"
    assert any(m.startswith("Training finished: 2 steps in") for m in summary)
    assert any(m.startswith("Final metrics:") and "val/mad=" in m for m in summary)
    assert any(m.startswith("Checkpoints:") and m.endswith("last.ckpt)") for m in summary)
    assert "Skipped training samples (unreadable): 0" in summary
    assert any(m.startswith("Exported network:") for m in summary)


def test_evaluate_prints_its_table_and_the_files_it_wrote(tmp_path, capsys):
    from test_eval_table4 import compose_eval
    from test_eval_tables import write_outputs

    from layeringdiff.tasks.evaluate import evaluate

    ours = write_outputs(tmp_path / "ours", 2, 0)
    evaluate(compose_eval(tmp_path / "run", [f"+eval.methods.ours={ours}", "eval=table2"]))
    printed = capsys.readouterr().out
    table = (tmp_path / "run" / "table2.md").read_text()
    assert table.strip() and table.rstrip() in printed  # the whole table, as written
    listing = printed.split(f"file(s) into {tmp_path / 'run'}:")[1].split()
    assert {"table2.md", "table2.csv", "table2.json", "table2_histograms.png"} <= set(listing)
    assert "config.yaml" not in listing


def test_infer_help_explains_infers_own_keys():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infer.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for key in (
        "image=",
        "box=",
        "mask=",
        "trimap=",
        "alpha=",
        "foreground=",
        "prompt=",
        "foreground_indices=",
        "prompts=",
        "layering=",
        "pipeline=",
        "out=",
        "device=",
    ):
        assert key in proc.stdout, key
    for member in ("classical", "layeringdiff", "germer_inpaint", "fba"):
        assert member in proc.stdout  # every layering member is described
    assert "experiment:" not in proc.stdout  # training groups are not infer's


def test_pymatting_banner_does_not_reach_stdout(monkeypatch, capsys):
    import numpy as np
    import pymatting
    import torch

    from layeringdiff.pipeline.foreground import closed_form_matting

    def noisy(img, tri):
        print("PERFORMANCE WARNING:\nThresholded incomplete Cholesky decomposition failed")
        return np.full(tri.shape, 0.25)

    monkeypatch.setattr(pymatting, "estimate_alpha_cf", noisy)
    trimap = torch.full((1, 8, 8), 0.5)
    trimap[:, :2], trimap[:, -2:] = 1.0, 0.0
    alpha = closed_form_matting(torch.rand(3, 8, 8), trimap, solver="pymatting")
    assert torch.allclose(alpha, torch.full((1, 8, 8), 0.25))  # the result is kept
    assert "PERFORMANCE WARNING" not in capsys.readouterr().out
