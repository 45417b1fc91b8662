"""A resumed training continues in the earlier run folder and the same W&B run."""

import logging

from omegaconf import OmegaConf

from layeringdiff.tasks.train import continue_in, run_folder_of


def test_resume_points_every_output_and_the_wandb_run_at_the_earlier_run(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")
    (run / "wandb_run_id").write_text("abc123\n")
    assert run_folder_of(str(ckpt)) == run.resolve()
    assert run_folder_of(str(tmp_path / "loose.ckpt")) is None  # not written by a run
    assert run_folder_of(None) is None

    cfg = OmegaConf.create(
        {
            "task_name": "fbdd",
            "paths": {"output_dir": str(tmp_path / "new")},
            "export_dir": "${paths.output_dir}/export",
            "logger": {"wandb": {"_target_": "WandbLogger", "id": None}},
        }
    )
    handler = continue_in(cfg, run.resolve(), str(ckpt))
    try:
        assert cfg.export_dir == str(run.resolve() / "export")
        assert cfg.logger.wandb.id == "abc123" and cfg.logger.wandb.resume == "allow"
        logging.getLogger("layeringdiff.test").warning("after the resume")
        handler.flush()
        assert "after the resume" in (run / "fbdd.log").read_text()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
