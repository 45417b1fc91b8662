"""FBDD through train.py's config: smoke run end to end + export, exact resume, empty data set."""

import csv
from pathlib import Path

import pytest
import torch

from layeringdiff.networks.fbdd import FBDD, FBDDInputError
from layeringdiff.tasks.train import train

SMOKE = ["experiment=fbdd_smoke"]


def train_losses(run_dir: Path, version: int = 0) -> dict[int, float]:
    rows = csv.DictReader(open(run_dir / "csv" / f"version_{version}" / "metrics.csv"))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


def assert_same_state(a, b, where: str = "checkpoint") -> None:
    """Nested dicts / lists of tensors and numbers equal, key by key (tensors exactly)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {set(a) ^ set(b)} differ"
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=lambda m: f"{where}: {m}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_resumed_equals_uninterrupted(
    full: Path, resumed: Path, keys=("state_dict", "optimizer_states", "lr_schedulers")
):
    """The last checkpoints of both runs: same step, weights (EMA included), optimizer and LR state."""
    a = torch.load(full / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"]
    for key in keys:
        assert_same_state(a[key], b[key], key)
    return a


def test_smoke_trains_exports_and_resumes_exactly(tmp_path, compose_config):
    # Train 4 steps uninterrupted; train 2, stop, resume mid-epoch (step 2 of 4 per epoch) to 4, with
    # an LR schedule and an EMA on. The resumed run must see the same batches (the data module
    # continues the epoch's order), step-seeded noise, weights, EMA, optimizer and LR state: equal
    # losses at every step and equal final checkpoints.
    common = [
        "trainer.log_every_n_steps=1",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "model.ema_decay=0.9",
        "model.lr_scheduler={_target_:torch.optim.lr_scheduler.LinearLR,_partial_:true,"
        "start_factor:0.1,total_iters:10}",
    ]
    cfg = compose_config(
        "train",
        tmp_path,
        SMOKE + common + ["trainer.max_steps=4", "trainer.val_check_interval=4"],
        output="full",
    )
    metrics = train(cfg)
    full = tmp_path / "full"
    assert {"train/loss", "val/mad", "val/mse"} <= metrics.keys()
    assert (full / "config.yaml").is_file() and list((full / "val_images").glob("*.png"))

    fbdd = FBDD.from_pretrained(metrics["export_dir"])
    layer = fbdd.decompose(
        torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64), 2, generator=torch.Generator().manual_seed(0)
    )
    assert layer.shape == (1, 3, 64, 64) and fbdd.layer == "foreground"

    stop = ["trainer.max_steps=2", "trainer.val_check_interval=100"]
    train(compose_config("train", tmp_path, SMOKE + common + stop, output="stopped"))
    ckpt = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert state and any(k.startswith("fbdd.unet.") for k in state)
    assert not any(k.startswith("fbdd.vae.") for k in state), "the frozen VAE is not checkpointed"
    resume = ["trainer.max_steps=4", "trainer.val_check_interval=100", f"ckpt_path={ckpt}"]
    train(compose_config("train", tmp_path, SMOKE + common + resume, output="resumed"))
    # the resumed run continues in the stopped run's folder: a second CSV version, the same checkpoints
    assert not (tmp_path / "resumed" / "checkpoints").exists()
    assert "`max_steps=4` reached" in (tmp_path / "stopped" / "fbdd_smoke.log").read_text()

    full_losses = train_losses(full)
    stopped, resumed = train_losses(tmp_path / "stopped"), train_losses(tmp_path / "stopped", 1)
    assert len(full_losses) == 4 and len(stopped) == 2 and len(resumed) == 2
    assert {**stopped, **resumed} == full_losses, "per-step losses differ after resuming"
    final = assert_resumed_equals_uninterrupted(full, tmp_path / "stopped")
    # the EMA and the LR schedule were really on (otherwise this test would check less than it says)
    weights = final["state_dict"]
    ema_keys = [k for k in weights if k.startswith("ema.module.")]
    assert ema_keys and int(weights["ema.n_averaged"]) == 4
    assert any(not torch.equal(weights[k], weights[k.replace("ema.module.", "fbdd.unet.")]) for k in ema_keys)
    lr = final["optimizer_states"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-3 * (0.1 + 0.9 * 4 / 10))


def test_empty_training_set_fails_before_training(tmp_path, compose_config):
    cfg = compose_config("train", tmp_path, [*SMOKE, "data.num_train=0"], output="empty")
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
