"""HFA end to end: the smoke experiment trains and exports; the FBDD-output cache resumes."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from layeringdiff.networks.hfa import HFANet, refine

ROOT = Path(__file__).resolve().parents[1]


def load_cache_script():
    spec = importlib.util.spec_from_file_location(
        "cache_fbdd_outputs", ROOT / "data" / "cache_fbdd_outputs.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_hfa_smoke_trains_and_exports_a_loadable_model(tmp_path, compose_config):
    from layeringdiff.tasks.train import train

    cfg = compose_config(
        "train", tmp_path, ["experiment=hfa_smoke", "trainer.max_steps=4", "trainer.val_check_interval=4"]
    )
    metrics = train(cfg)
    for name in (
        "train/loss",
        "train/haar",
        "val/mad",
        "val/mse",
        "val/lpips",
        "val/lpips_visible",
        "val/lpips_occluded",
        "val/mad_visible",
        "val/mad_occluded",
    ):
        assert name in metrics and torch.isfinite(torch.tensor(metrics[name])), name
    assert metrics["val/mad_visible"] == 0.0  # B := C where alpha == 0, and C == B_gt there
    assert metrics["val/mad_occluded"] > 0
    net = HFANet.from_pretrained(metrics["export_dir"])
    assert net.config.layer == "background"
    assert list((tmp_path / "run" / "val_images").glob("*.png"))
    x = torch.rand(1, 3, 24, 24)
    alpha = torch.zeros(1, 1, 24, 24)
    assert torch.equal(refine(net, x, alpha, torch.rand(1, 3, 24, 24)), x)
    # checkpoints load weights-only, hold the net but not the LPIPS trunk, and resume
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 4 and not any("lpips" in k for k in ckpt["state_dict"])
    cfg = compose_config(
        "train",
        tmp_path / "resumed",
        [
            "experiment=hfa_smoke",
            "trainer.max_steps=6",
            "trainer.val_check_interval=2",
            "callbacks.model_checkpoint.every_n_train_steps=2",
            f"ckpt_path={tmp_path / 'run'}",
        ],
    )
    train(cfg)  # continues in the earlier run folder
    resumed = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 6, sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert not (tmp_path / "resumed" / "run" / "checkpoints").exists()


def hfa_losses(run_dir: Path) -> dict[int, float]:
    """step -> train/loss from every CSV log under a run folder (a resumed run may add a version)."""
    import csv

    losses = {}
    for path in run_dir.rglob("metrics.csv"):
        for row in csv.DictReader(path.read_text().splitlines()):
            if row.get("train/loss"):
                assert int(row["step"]) not in losses, f"step {row['step']} logged twice"
                losses[int(row["step"])] = float(row["train/loss"])
    return losses


def test_hfa_resume_with_lr_schedule_and_ema_equals_uninterrupted(tmp_path, compose_config):
    # 6 steps uninterrupted vs 3, stop, resume to 6 (a cosine LR schedule and an EMA on): equal
    # per-step losses, and equal final weights, EMA, optimizer and LR state.
    from test_fbdd_train import assert_same_state

    from layeringdiff.tasks.train import train

    common = [
        "experiment=hfa_smoke",
        "model.lpips=off",
        "model.ema_decay=0.8",
        "model.lr_scheduler.T_max=6",
        "trainer.log_every_n_steps=1",
        "trainer.val_check_interval=100",
        "trainer.num_sanity_val_steps=0",
        "callbacks.model_checkpoint.every_n_train_steps=3",
    ]
    train(compose_config("train", tmp_path / "full", common + ["trainer.max_steps=6"]))
    train(compose_config("train", tmp_path / "stopped", common + ["trainer.max_steps=3"]))
    stopped_ckpt = tmp_path / "stopped" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(stopped_ckpt, weights_only=True)["global_step"] == 3
    train(
        compose_config(
            "train", tmp_path / "resumed", common + ["trainer.max_steps=6", f"ckpt_path={stopped_ckpt}"]
        )
    )

    full = hfa_losses(tmp_path / "full")
    assert sorted(full) == list(range(6)) or sorted(full) == list(range(1, 7)), sorted(full)
    interrupted = {**hfa_losses(tmp_path / "stopped"), **hfa_losses(tmp_path / "resumed")}
    assert interrupted == full, "per-step losses differ after resuming"
    a = torch.load(tmp_path / "full" / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    finals = [torch.load(p, weights_only=True) for p in tmp_path.glob("[sr]*/run/checkpoints/last.ckpt")]
    b = max(finals, key=lambda c: c["global_step"])  # the resumed run's (wherever it writes)
    assert a["global_step"] == b["global_step"] == 6
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        assert_same_state(a[key], b[key], key)
    weights = a["state_dict"]
    assert int(weights["ema.n_averaged"]) == 6
    ema = [k for k in weights if k.startswith("ema.module.")]
    assert ema and any(not torch.equal(weights[k], weights[k.replace("ema.module.", "net.")]) for k in ema)
    lr = a["optimizer_states"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * 6 / 6)) / 2)


def test_cache_degrade_mode_resumes_and_feeds_training(tmp_path, compose_config):
    cache = load_cache_script()
    out = tmp_path / "fbdd_outputs"
    data = ["data=synthetic", "data.size=32", "data.num_train=3", "data.num_val=1"]
    base = [
        "--out",
        str(out),
        "--mode",
        "degrade",
        "--no-progress",
        "--batch-size",
        "2",
        "--samples-per-shard",
        "2",
    ]
    first = cache.main([*base, *data])
    assert first == {
        "train": {"written": 3, "skipped": 0, "failed": 0},
        "val": {"written": 1, "skipped": 0, "failed": 0},
    }
    shards = sorted(out.glob("*/*.tar"))  # train 0-1, train 2, val 0: tar shards, not a file per sample
    assert [p.relative_to(out).as_posix() for p in shards] == [
        "train/train-000000.tar", "train/train-000001.tar", "val/val-000000.tar",
    ]  # fmt: skip
    assert not list(out.rglob("*.safetensors"))
    from layeringdiff.data.cache_reader import CacheReader

    before = {k: v for k, v in CacheReader(out).samples()}
    stamps = {p: p.stat().st_mtime_ns for p in shards}
    original = shards[1].read_bytes()
    shards[1].with_suffix(".json").unlink()  # an interrupted run: the last train shard unfinished
    second = cache.main([*base, *data])
    assert second["train"] == {"written": 1, "skipped": 2, "failed": 0}
    assert second["val"] == {"written": 0, "skipped": 1, "failed": 0}
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != shards[1])
    # same settings -> the redone shard is identical, byte for byte (seeded per sample, not per batch)
    assert shards[1].read_bytes() == original
    reader = CacheReader(out)
    assert sorted(reader.keys()) == sorted(before)
    for key, tensors in before.items():
        redone = reader.get(key)
        assert set(redone) == {"fbdd_foreground", "fbdd_background"}
        assert all(torch.equal(redone[k], tensors[k]) for k in tensors)
    # other settings may not mix into the folder

    with pytest.raises(SystemExit, match="other settings"):
        cache.main(["--out", str(out), "--mode", "degrade", "--seed", "1", "--no-progress", *data])

    # the sidecars feed HFA training (paper-style input_mode=sidecar)
    from layeringdiff.tasks.train import train

    cfg = compose_config(
        "train",
        tmp_path,
        [
            "experiment=hfa_smoke",
            "model.input_mode=sidecar",
            "model.lpips=off",
            f"data.sidecars=[{out}]",
            *data[1:],
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "callbacks=none",
        ],
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/mse"]))


def test_cache_fbdd_mode_runs_exported_fbdd_models_and_resumes(tmp_path):
    from layeringdiff.networks.fbdd import FBDD
    from layeringdiff.tiny import sd2

    repo = sd2.build(tmp_path / "sd2")
    for layer in ("foreground", "background"):
        model = FBDD.from_sd2_inpainting(repo, layer, null_prompt_cache=tmp_path / "null")
        if layer == "background":  # two different models, so a foreground/background mix-up shows
            with torch.no_grad():
                model.unet.conv_out.bias.add_(0.5)
        model.save_pretrained(tmp_path / layer)
    cache = load_cache_script()
    out = tmp_path / "fbdd_outputs"
    args = [
        "--out", str(out), "--mode", "fbdd", "--no-progress", "--steps", "2", "--device", "cpu",
        "--fbdd-foreground", str(tmp_path / "foreground"), "--fbdd-background", str(tmp_path / "background"),
        "--splits", "train", "data=synthetic", "data.size=32", "data.num_train=2",
    ]  # fmt: skip
    assert cache.main(args)["train"] == {"written": 2, "skipped": 0, "failed": 0}
    from layeringdiff.data.cache_reader import CacheReader

    key = sorted(CacheReader(out).keys())[0]
    side = CacheReader(out).get(key)
    assert side["fbdd_foreground"].shape == (3, 32, 32) and side["fbdd_background"].shape == (3, 32, 32)
    assert cache.main(args)["train"] == {"written": 0, "skipped": 2, "failed": 0}
    # every sidecar equals FBDD.decompose run directly on that sample, with the layer's own model,
    # the same steps and the documented seed (one generator per batch, from the seed, layer and keys)
    from layeringdiff.data.sidecar import image_to_uint8
    from layeringdiff.data.splits import stable_seed

    data = cache.build_datamodule(args[args.index("data=synthetic") :]).build("train")
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))  # the script's default batch
    keys = list(batch["key"])
    for layer in ("foreground", "background"):
        gen = torch.Generator().manual_seed(stable_seed(0, "fbdd", layer, *keys))
        model = FBDD.from_pretrained(tmp_path / layer)
        direct = model.decompose(batch["composite"], batch["alpha"], 2, generator=gen, scheduler="ddim")
        for i, key in enumerate(keys):
            cached = CacheReader(out).get(key)[f"fbdd_{layer}"]
            assert torch.equal(image_to_uint8(direct[i]), image_to_uint8(cached)), (layer, key)


def test_cache_with_missing_fbdd_model_fails_before_recording_settings(tmp_path):
    from layeringdiff.weights import MissingWeightsError

    cache = load_cache_script()
    out = tmp_path / "fbdd_outputs"
    args = ["--out", str(out), "--mode", "fbdd", "--fbdd-foreground", str(tmp_path / "missing"), "--no-progress",
            "--splits", "train", "data=synthetic", "data.size=32", "data.num_train=1"]  # fmt: skip
    with pytest.raises(MissingWeightsError, match="missing"):
        cache.main(args)
    # no settings file recorded, so the corrected rerun into the same --out is not refused
    assert not (out / "cache_info.json").exists()
