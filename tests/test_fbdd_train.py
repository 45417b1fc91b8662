"""FBDD through train.py's config: smoke run end to end + export, exact resume, empty data set."""

import csv
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from layeringdiff.networks.fbdd import FBDD, FBDDInputError
from layeringdiff.tasks.train import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def smoke_cfg(tmp_path: Path, run: str, overrides: list[str]):
    base = [
        "experiment=fbdd_smoke",
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / run}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=base + overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def train_losses(run_dir: Path) -> dict[int, float]:
    rows = csv.DictReader(open(next(run_dir.glob("csv/version_*/metrics.csv"))))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


def test_smoke_trains_exports_and_resumes_exactly(tmp_path):
    # Resumed mid-epoch (step 2 of 4 per epoch), the next step must see the same batch (the data
    # module continues the epoch's order), weights, optimizer state and step-seeded noise.
    common = [
        "trainer.log_every_n_steps=1",
        "callbacks.model_checkpoint.every_n_train_steps=2",
    ]
    cfg = smoke_cfg(tmp_path, "full", common + ["trainer.max_steps=4", "trainer.val_check_interval=4"])
    metrics = train(cfg)
    full = tmp_path / "full"
    assert {"train/loss", "val/mad", "val/mse"} <= metrics.keys()
    assert (full / "config.yaml").is_file() and list((full / "val_images").glob("*.png"))

    fbdd = FBDD.from_pretrained(metrics["export_dir"])
    layer = fbdd.decompose(
        torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64), 2, generator=torch.Generator().manual_seed(0)
    )
    assert layer.shape == (1, 3, 64, 64) and fbdd.layer == "foreground"

    ckpt = full / "checkpoints" / "step_0000002.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert any(k.startswith("fbdd.unet.") for k in state)
    assert not any(k.startswith("fbdd.vae.") for k in state), "the frozen VAE is not checkpointed"
    resumed_cfg = smoke_cfg(
        tmp_path,
        "resumed",
        common + ["trainer.max_steps=3", "trainer.val_check_interval=100", f"ckpt_path={ckpt}"],
    )
    train(resumed_cfg)
    full_losses, resumed_losses = train_losses(full), train_losses(tmp_path / "resumed")
    step = max(resumed_losses)
    assert step in full_losses and len(resumed_losses) == 1
    assert resumed_losses[step] == pytest.approx(full_losses[step], rel=1e-6, abs=1e-7)


def test_empty_training_set_fails_before_training(tmp_path):
    cfg = smoke_cfg(tmp_path, "empty", ["data.num_train=0"])
    with pytest.raises((FBDDInputError, ValueError)) as e:
        train(cfg)
    assert "\n" not in str(e.value) and "empty" in str(e.value).lower()
    assert not list((tmp_path / "empty").glob("checkpoints/*.ckpt"))


def test_train_py_missing_weights_is_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "train.py"), "experiment=fbdd_smoke", "model.build_tiny=false"]
    cmd += [
        f"model.pretrained={tmp_path / 'missing'}",
        f"paths.log_dir={tmp_path}",
        f"paths.cache_dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("error: SD2-inpainting unet: no folder at")
    assert "Traceback" not in proc.stderr
