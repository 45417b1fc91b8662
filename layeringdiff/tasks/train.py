"""``train(cfg)``: build data, network, trainer from the composed config; fit; export."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from layeringdiff.tasks.common import instantiate_group, resolve_ckpt_path, save_resolved_config

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict:
    """Train the network that ``cfg.model`` names on ``cfg.data``.

    Returns:
        The trainer's final ``callback_metrics`` (floats), plus ``export_dir`` when exported.
    """
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("extras", {}).get("print_config"):
        log.info("\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    save_resolved_config(cfg, output_dir)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)

    # Resolve the checkpoint before anything heavy is built, so a wrong path fails at once.
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), Path(cfg.paths.log_dir) / cfg.task_name, output_dir)

    log.info("Building data <%s>", cfg.data._target_)
    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    log.info("Building model <%s>", cfg.model._target_)
    model: pl.LightningModule = instantiate(cfg.model)

    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    export_dir = cfg.get("export_dir")
    if export_dir and hasattr(model, "export") and trainer.is_global_zero:
        model.export(export_dir)
        metrics["export_dir"] = str(export_dir)
        log.info("Exported trained network to %s", export_dir)
    return metrics
