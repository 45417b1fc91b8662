"""``train(cfg)``: build data, network, trainer from the composed config; fit; export; summarise.

A resumed run (``ckpt_path`` = a checkpoint of an earlier run, its run folder, or ``last``)
continues in the earlier run folder: checkpoints, logger files, validation grids and the export
land there, this invocation's log lines are appended to its log file, and a W&B logger continues
the same W&B run (its id is kept in ``<run folder>/wandb_run_id``). The Hydra folder of the resuming
invocation keeps only its ``.hydra/``, ``config.yaml`` and log.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from layeringdiff.tasks.common import instantiate_group, resolve_ckpt_path, save_resolved_config
from layeringdiff.tasks.console import LossLines, progress_bar_drawn, quiet_console

log = logging.getLogger(__name__)
WANDB_ID_FILE = "wandb_run_id"


def train(cfg: DictConfig) -> dict:
    """Train the network that ``cfg.model`` names on ``cfg.data``.

    Returns:
        The trainer's final ``callback_metrics`` (floats), plus ``export_dir`` when exported.
    """
    import lightning.pytorch as pl

    quiet_console()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("extras", {}).get("print_config"):
        log.info("\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    save_resolved_config(cfg, output_dir)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)

    # Resolve the checkpoint before anything heavy is built, so a wrong path fails at once.
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), Path(cfg.paths.log_dir) / cfg.task_name, output_dir)
    earlier = run_folder_of(ckpt_path)
    resumed_log = None
    if earlier is not None and earlier != output_dir.resolve():
        resumed_log = continue_in(cfg, earlier, ckpt_path)
    try:
        return fit(cfg, ckpt_path)
    finally:
        if resumed_log is not None:
            logging.getLogger().removeHandler(resumed_log)
            resumed_log.close()


def fit(cfg: DictConfig, ckpt_path: str | None) -> dict:
    """Instantiate data, model, callbacks, loggers and trainer; fit; export; log the summary."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from layeringdiff.training.checkpoints import AtomicCheckpointIO
    from layeringdiff.training.data_health import EpochDataCheck

    log.info("Building data <%s>", cfg.data._target_)
    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    log.info("Building model <%s>", cfg.model._target_)
    model: pl.LightningModule = instantiate(cfg.model)

    callbacks = instantiate_group(cfg.get("callbacks")) + [EpochDataCheck()]  # stops on an empty epoch
    bar = progress_bar_drawn(cfg.trainer.get("enable_progress_bar", True))
    if not bar:  # the loss goes to the log as lines instead
        callbacks.append(LossLines(cfg.trainer.get("log_every_n_steps", 50)))
    loggers = instantiate_group(cfg.get("logger"))
    # checkpoints written beside their destination and renamed (never a torn last.ckpt)
    io = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_progress_bar=bar, **io
    )
    remember_wandb_id(loggers, Path(cfg.paths.output_dir))
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.monotonic()
    trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    export_dir = cfg.get("export_dir")
    if export_dir and hasattr(model, "export") and trainer.is_global_zero:
        model.export(export_dir)
        metrics["export_dir"] = str(export_dir)
    if trainer.is_global_zero:
        log_summary(trainer, metrics, time.monotonic() - start, Path(cfg.paths.output_dir))
    return metrics


def run_folder_of(ckpt_path: str | None) -> Path | None:
    """The run folder a checkpoint was written by (``<run>/checkpoints/*.ckpt``), or None."""
    if ckpt_path is None:
        return None
    folder = Path(ckpt_path).resolve().parent
    if folder.name == "checkpoints" and (folder.parent / "config.yaml").is_file():
        return folder.parent
    return None


def continue_in(cfg: DictConfig, run: Path, ckpt_path: str) -> logging.Handler:
    """Point every output of this training at the earlier run folder ``run``.

    Returns:
        The handler that appends this invocation's log lines to the run's log file.
    """
    with open_dict(cfg):
        cfg.paths.output_dir = str(run)
        wandb = OmegaConf.select(cfg, "logger.wandb")
        id_file = run / WANDB_ID_FILE
        if wandb is not None and wandb.get("id") is None and id_file.is_file():
            wandb.id = id_file.read_text().strip()
            wandb.resume = "allow"
    root = logging.getLogger()
    handler = logging.FileHandler(run / f"{cfg.task_name}.log")
    formatters = [h.formatter for h in root.handlers if h.formatter is not None]
    if formatters:
        handler.setFormatter(formatters[0])
    root.addHandler(handler)
    log.info("Resuming from %s: continuing in the run folder %s", ckpt_path, run)
    return handler


def remember_wandb_id(loggers: list, run: Path) -> None:
    """Keep the W&B run id in the run folder, so a resumed run continues the same W&B run."""
    from lightning.pytorch.loggers import WandbLogger

    from layeringdiff.files import atomic_write_bytes

    for lg in loggers:
        if isinstance(lg, WandbLogger):
            atomic_write_bytes(run / WANDB_ID_FILE, f"{lg.version}\n".encode())


def log_summary(trainer, metrics: dict, seconds: float, run: Path) -> None:
    """The end-of-training summary: steps and time, final (and best) metrics, where things are."""
    from layeringdiff.training.data_health import EpochDataCheck

    steps = trainer.global_step
    per_step = f", {seconds / steps:.2f} s/step" if steps else ""
    log.info("Training finished: %d steps in %.1f s%s", steps, seconds, per_step)
    numbers = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if isinstance(v, float))
    log.info("Final metrics: %s", numbers or "none logged")
    ckpt = trainer.checkpoint_callback
    for c in trainer.checkpoint_callbacks:  # the retention callback ranks by step: not a "best"
        if c.monitor not in (None, "step", "epoch") and c.best_model_score is not None:
            log.info("Best %s=%.4g: %s", c.monitor, float(c.best_model_score), c.best_model_path)
    if ckpt is not None and ckpt.dirpath:
        log.info("Checkpoints: %s (last: %s)", ckpt.dirpath, ckpt.last_model_path or "none")
    check = next((c for c in trainer.callbacks if isinstance(c, EpochDataCheck)), None)
    if check is not None:
        log.info("Skipped training samples (unreadable): %d", check.skipped_total)
    if "export_dir" in metrics:
        log.info("Exported network: %s", metrics["export_dir"])
    log.info("Run folder: %s", run)
