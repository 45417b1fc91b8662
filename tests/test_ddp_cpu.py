"""trainer=ddp_cpu: 2 processes (gloo) train fbdd_smoke on 3 train shards + 1 val shard, 2 workers.

One run (~40 s idle) checks the multi-process contract end to end: every sample once per epoch
(union over ranks), equal steps on both ranks, one run folder, one export, rank-zero validation
grids, checkpoint retention (the newest N step checkpoints + last + best).
"""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from layeringdiff.data.shard_writer import write_shards
from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.distributed import job_stamp, launcher_rank, rank_suffix
from layeringdiff.training.seen_keys import read_seen

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    train_keys = SyntheticLayers(6, size=64, split="train")
    write_shards(train_keys, tmp / "shards", "train", samples_per_shard=2)  # 3 shards
    write_shards(SyntheticLayers(2, size=64, split="val"), tmp / "shards", "val", samples_per_shard=2)
    cmd = [
        sys.executable, str(ROOT / "train.py"), "experiment=fbdd_smoke", "trainer=ddp_cpu",
        "data=shards", f"data.dataset.root={tmp / 'shards'}", "data.size=64", "data.batch_size=1",
        "data.num_workers=2", "trainer.max_steps=6", "trainer.val_check_interval=3",
        "callbacks.model_checkpoint.every_n_train_steps=1", "callbacks.model_checkpoint.save_top_k=2",
        f"paths.log_dir={tmp / 'out'}", f"model.pretrained={tmp / 'tiny_sd2'}",
        "+callbacks.seen_keys._target_=layeringdiff.training.seen_keys.SeenKeys",
        f"+callbacks.seen_keys.folder={tmp / 'seen'}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, sorted(train_keys.key(i) for i in range(6))


def test_every_sample_once_per_epoch_and_equal_steps(ddp_run):
    tmp, keys = ddp_run
    seen = read_seen(tmp / "seen")
    assert sorted(seen) == [0, 1]
    for epoch in (0, 1):  # 6 samples / (2 ranks x batch 1) = 3 steps per rank per epoch
        per_rank = [seen[r][epoch] for r in (0, 1)]
        assert [len(k) for k in per_rank] == [3, 3]
        assert sorted(per_rank[0] + per_rank[1]) == keys  # each sample once: no repeat, none missing


def test_one_run_folder_one_export_and_checkpoint_retention(ddp_run):
    tmp, _ = ddp_run
    runs = list((tmp / "out" / "fbdd_smoke" / "runs").iterdir())
    assert len(runs) == 1, runs  # the second process did not make a folder of its own
    run = runs[0]
    logs = {p.name: p.read_text() for p in run.glob("*.log")}
    assert sorted(logs) == ["fbdd_smoke.log", "fbdd_smoke.rank1.log"]
    assert sum(text.count("model exported to") for text in logs.values()) == 1
    assert (run / "export").is_dir()
    assert sorted(p.name for p in (run / "val_images").iterdir()) == [
        "val_grid_foreground_step0000003.png",
        "val_grid_foreground_step0000006.png",
    ]
    ckpts = Counter(p.name.split("_")[0] for p in (run / "checkpoints").glob("*.ckpt"))
    assert ckpts == {"step": 2, "best": 1, "last.ckpt": 1}  # 6 step checkpoints written, 2 kept
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == [
        "step_0000005.ckpt",
        "step_0000006.ckpt",
    ]


@pytest.mark.parametrize(
    ("env", "stamp", "rank"),
    [
        ({}, "default", 0),
        ({"WORLD_SIZE": "2", "RANK": "1", "TORCHELASTIC_RUN_ID": "job7"}, "torchrun-job7", 1),
        ({"WORLD_SIZE": "1", "RANK": "0", "TORCHELASTIC_RUN_ID": "job7"}, "default", 0),
        (
            {"SLURM_NTASKS": "16", "SLURM_PROCID": "9", "SLURM_JOB_ID": "42", "SLURM_STEP_ID": "3"},
            "slurm-42.3",
            9,
        ),
        ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_ID": "42"}, "default", 0),
        ({"LOCAL_RANK": "1"}, "default", 1),  # Lightning's launcher passes the folder itself
    ],
)
def test_job_stamp_and_rank_from_the_launcher(monkeypatch, env, stamp, rank):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert job_stamp("default") == stamp
    assert launcher_rank() == rank and rank_suffix() == (f".rank{rank}" if rank else "")


def test_torchrun_without_rdzv_id_shares_the_agent_pid(monkeypatch):
    import os
    import socket

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    assert job_stamp("x") == f"torchrun-{socket.gethostname()}-{os.getppid()}"


def test_run_folder_config_uses_the_job_stamp(monkeypatch):
    from hydra import compose, initialize_config_dir

    import layeringdiff  # noqa: F401  (registers the resolvers)

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "train", overrides=["experiment=fbdd_smoke", "paths.log_dir=/o"], return_hydra_config=True
        )
    assert cfg.hydra.run.dir == "/o/fbdd_smoke/runs/torchrun-abc"
    log_file = cfg.hydra.job_logging.handlers.file
    assert log_file._get_node("filename")._value().endswith("${task_name}${rank_suffix:}.log")


def test_slurm_launcher_config_follows_the_trainer():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="optional extra: layeringdiff[slurm]")
    from hydra import compose, initialize_config_dir

    import layeringdiff  # noqa: F401  (registers the resolvers)

    over = [
        "hydra/launcher=slurm",
        "experiment=fbdd_smoke",
        "trainer=ddp",
        "trainer.num_nodes=8",
        "trainer.devices=8",
    ]
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=over, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (8, 8, 8)
    assert launcher.name == "fbdd_smoke"


@pytest.mark.slow  # a second 2-process training (~40 s idle, minutes on a busy CPU)
def test_torchrun_processes_share_one_run_folder(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun), "--standalone", "--nproc-per-node", "2", str(ROOT / "train.py"),
        "experiment=fbdd_smoke", "trainer=ddp_cpu", "trainer.max_steps=2", "trainer.val_check_interval=2",
        "callbacks=none", f"paths.log_dir={tmp_path / 'out'}", f"model.pretrained={tmp_path / 'sd2'}",
        "data.num_train=4",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "out" / "fbdd_smoke" / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("torchrun-"), runs
    logs = sorted(p.name for p in runs[0].glob("*.log"))
    assert logs == ["fbdd_smoke.log", "fbdd_smoke.rank1.log"] and (runs[0] / "export").is_dir()
