"""The background experiments are deltas of the foreground ones: composed, they differ only in
what must differ (names, tags, the layer, FBDD's alpha init); the data options share one base."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NAMES = {"task_name", "experiment_name", "tags"}


def composed(overrides: list[str]) -> dict:
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return flatten(OmegaConf.to_container(cfg, resolve=False))


def flatten(node: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in node.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differing(a: dict, b: dict) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


@pytest.mark.parametrize(
    "fg, bg, expected",
    [
        ("fbdd_fg", "fbdd_bg", NAMES | {"model.layer", "model.alpha_init"}),
        ("hfa_fan", "hfa_ban", NAMES | {"model.layer"}),
    ],
)
def test_background_experiment_differs_from_the_foreground_one_only_where_it_must(fg, bg, expected):
    f, b = composed([f"experiment={fg}"]), composed([f"experiment={bg}"])
    assert differing(f, b) == expected
    assert (f["model.layer"], b["model.layer"]) == ("foreground", "background")
    assert b["task_name"] == bg and b["experiment_name"] == bg


def test_data_options_share_the_base_and_set_their_own_dataset():
    base = flatten(OmegaConf.to_container(OmegaConf.load(CONFIGS / "data" / "common" / "datamodule.yaml")))
    targets = set()
    for path in sorted((CONFIGS / "data").glob("*.yaml")):
        data = {
            k[len("data.") :]: v for k, v in composed([f"data={path.stem}"]).items() if k.startswith("data.")
        }
        own = flatten(OmegaConf.to_container(OmegaConf.load(path)))
        for key, value in base.items():  # every base key arrives, unless the option sets it itself
            assert data[key] == own.get(key, value), (path.name, key)
        targets.add(data["dataset._target_"])
    assert len(targets) == len(list((CONFIGS / "data").glob("*.yaml")))  # each names its own dataset


def restated_defaults(node) -> dict:
    """Keys of a ``_target_`` node whose YAML value equals the target's own default (duplicates)."""
    import inspect

    from hydra.utils import get_object

    params = inspect.signature(get_object(node._target_)).parameters
    raw = OmegaConf.to_container(node, resolve=False)  # interpolations stay strings, never defaults
    return {
        k: raw[k]
        for k, p in params.items()
        if k in raw and p.default is not inspect.Parameter.empty and raw[k] == p.default
    }


# The paper's constants: defined once in code, never restated in YAML.
CONSTANTS = {"haar_weight", "haar_levels", "copy_threshold", "box_threshold", "text_threshold"}
CONSTANTS |= {"transparency_box_threshold", "transparency_text_threshold", "transparency_query"}
CONSTANTS |= {"kernel_size", "erode_iterations", "dilate_iterations"}


@pytest.mark.parametrize(
    "config, path",
    [("model/hfa.yaml", ""), ("eval/table1.yaml", "segmenter"), ("pipeline/default.yaml", "foreground")],
)
def test_yaml_does_not_restate_the_paper_constants(config, path):
    node = OmegaConf.load(CONFIGS / config)
    node = OmegaConf.select(node, path) if path else node
    assert CONSTANTS & set(restated_defaults(node)) == set()
    raw = OmegaConf.to_container(node, resolve=False)
    literal = {k: v for k, v in raw.items() if k in CONSTANTS and not str(v).startswith("${code:")}
    assert literal == {}, "paper constants are read from the code with ${code:...}, not written in YAML"


def test_restated_default_is_found():
    node = OmegaConf.create({"_target_": "layeringdiff.metrics.miou.GroundedSam", "box_threshold": 0.25})
    assert restated_defaults(node) == {"box_threshold": 0.25}


def test_code_constants_show_in_yaml_and_override_without_plus(compose_config, tmp_path):
    """``${code:...}`` gives the code's value; a plain override replaces it; a bad name is named."""
    from omegaconf.errors import InterpolationResolutionError

    from layeringdiff.compositing import TRIMAP_KERNEL_SIZE
    from layeringdiff.networks.haar import HAAR_WEIGHT
    from layeringdiff.pipeline.hf_models import BOX_THRESHOLD

    cfg = compose_config("train", tmp_path, ["experiment=hfa_ban"])
    assert cfg.model.haar_weight == HAAR_WEIGHT == 0.2
    assert (
        compose_config("train", tmp_path, ["experiment=hfa_ban", "model.haar_weight=0.5"]).model.haar_weight
        == 0.5
    )
    infer = compose_config("infer", tmp_path)
    assert infer.pipeline.foreground.box_threshold == BOX_THRESHOLD == 0.25
    assert infer.pipeline.foreground.kernel_size == TRIMAP_KERNEL_SIZE == 10
    bad = OmegaConf.create({"x": "${code:layeringdiff.networks.haar.NO_SUCH}"})
    with pytest.raises(InterpolationResolutionError, match="no constant 'NO_SUCH' in module"):
        _ = bad.x
