"""Every config group and every experiment composes, resolves, and builds (or fails cleanly)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from layeringdiff.weights import MissingWeightsError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def compose_cfg(tmp_path, name: str, overrides: list[str]) -> DictConfig:
    base = [
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(name, overrides=base + overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    OmegaConf.resolve(cfg)  # every interpolation must resolve
    return cfg


def targets(node) -> list[str]:
    """All ``_target_`` strings in a config tree."""
    found = []
    if isinstance(node, DictConfig):
        if "_target_" in node:
            found.append(node["_target_"])
        for v in node.values():
            found += targets(v)
    elif isinstance(node, ListConfig):
        for v in node:
            found += targets(v)
    return found


def assert_targets_importable(cfg: DictConfig) -> None:
    from hydra._internal.utils import _locate

    for t in targets(cfg):
        assert callable(_locate(t)), t


def build_or_missing(node: DictConfig):
    """Instantiate; a config that names real weights may only fail with MissingWeightsError."""
    try:
        return instantiate(node)
    except InstantiationException as e:
        cause = e.__cause__
        if not isinstance(cause, MissingWeightsError):
            raise
        assert "\n" not in str(cause)
        return cause


def test_train_default_composes(tmp_path):
    cfg = compose_cfg(tmp_path, "train", [])
    assert cfg.seed is not None and cfg.task_name == "train"
    assert_targets_importable(cfg)


@pytest.mark.parametrize("group", ["data", "model", "callbacks", "logger", "trainer", "debug"])
def test_every_train_group_option_builds(tmp_path, group):
    opts = options(group)
    assert opts, f"configs/{group} is empty"
    for opt in opts:
        cfg = compose_cfg(tmp_path, "train", [f"{group}={opt}"])
        assert_targets_importable(cfg)
        if group == "data":
            assert instantiate(cfg.data) is not None
        elif group == "model":
            build_or_missing(cfg.model)
        elif group in ("callbacks", "logger"):
            for name, node in (cfg.get(group) or {}).items():
                assert instantiate(node) is not None, name
        elif group == "trainer":
            instantiate(cfg.trainer, accelerator="cpu", devices=1, strategy="auto")


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_and_builds(tmp_path, experiment):
    cfg = compose_cfg(tmp_path, "train", [f"experiment={experiment}"])
    assert cfg.seed is not None, "experiments pin the seed"
    assert_targets_importable(cfg)
    assert instantiate(cfg.data) is not None
    model = build_or_missing(cfg.model)
    if isinstance(model, MissingWeightsError):
        assert not cfg.model.get("build_tiny", False), "a smoke experiment must build its tiny weights"


@pytest.mark.parametrize("name,group", [("evaluate", "eval"), ("infer", "pipeline"), ("infer", "layering")])
def test_evaluate_and_infer_groups_compose(tmp_path, name, group):
    if not (CONFIGS / f"{name}.yaml").exists():
        pytest.skip(f"configs/{name}.yaml not written yet")
    required = {"table3": [f"study.db={tmp_path / 'study.db'}"]}  # mandatory values of some options
    for opt in options(group):
        cfg = compose_cfg(tmp_path, name, [f"{group}={opt}", *required.get(opt, [])])
        assert_targets_importable(cfg)
        if group == "eval":
            from hydra.utils import get_method

            assert callable(get_method(cfg.eval.runner))
