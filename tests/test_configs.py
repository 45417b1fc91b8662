"""Every config group and every experiment composes, resolves, and builds (or fails cleanly)."""

from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig

from layeringdiff.weights import MissingWeightsError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


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


def test_train_default_composes(tmp_path, compose_config):
    cfg = compose_config("train", tmp_path, [], resolve=True)
    assert cfg.seed is not None and cfg.task_name == "train"
    assert_targets_importable(cfg)


@pytest.mark.parametrize("group", ["data", "model", "callbacks", "logger", "trainer", "debug"])
def test_every_train_group_option_builds(tmp_path, group, compose_config):
    opts = options(group)
    assert opts, f"configs/{group} is empty"
    for opt in opts:
        cfg = compose_config("train", tmp_path, [f"{group}={opt}"], resolve=True)
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
def test_every_experiment_composes_and_builds(tmp_path, experiment, compose_config):
    cfg = compose_config("train", tmp_path, [f"experiment={experiment}"], resolve=True)
    assert cfg.seed is not None, "experiments pin the seed"
    assert_targets_importable(cfg)
    assert instantiate(cfg.data) is not None
    model = build_or_missing(cfg.model)
    if isinstance(model, MissingWeightsError):
        assert not cfg.model.get("build_tiny", False), "a smoke experiment must build its tiny weights"


@pytest.mark.parametrize("name,group", [("evaluate", "eval"), ("infer", "pipeline"), ("infer", "layering")])
def test_evaluate_and_infer_groups_compose(tmp_path, name, group, compose_config):
    if not (CONFIGS / f"{name}.yaml").exists():
        pytest.skip(f"configs/{name}.yaml not written yet")
    required = {"table3": [f"study.db={tmp_path / 'study.db'}"]}  # mandatory values of some options
    for opt in options(group):
        cfg = compose_config(name, tmp_path, [f"{group}={opt}", *required.get(opt, [])], resolve=True)
        assert_targets_importable(cfg)
        if group == "eval":
            from hydra.utils import get_method

            assert callable(get_method(cfg.eval.runner))
