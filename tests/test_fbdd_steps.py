"""One FBDD sampler setting (configs/fbdd/default.yaml) drives the HFA cache, inference and Table 4."""

import importlib.util
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def load_cache_script():
    spec = importlib.util.spec_from_file_location(
        "cache_fbdd_outputs", ROOT / "data" / "cache_fbdd_outputs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cache_infer_and_table4_resolve_the_same_steps(compose_config, tmp_path):
    shared = OmegaConf.load(ROOT / "configs" / "fbdd" / "default.yaml")
    args = load_cache_script().parse_args(["--out", str(tmp_path / "c"), "--mode", "degrade"])
    infer = compose_config("infer", tmp_path, ["layering=layeringdiff"], resolve=True)
    table4 = compose_config("evaluate", tmp_path, ["eval=table4"], resolve=True).eval.layerings.layeringdiff
    steps = {args.steps, infer.layering.num_inference_steps, table4.num_inference_steps}
    schedulers = {args.scheduler, infer.layering.scheduler, table4.scheduler}
    assert steps == {shared.num_inference_steps} and schedulers == {shared.scheduler}


def test_one_override_moves_inference_and_table4_together(compose_config, tmp_path):
    over = ["fbdd.num_inference_steps=7", "fbdd.scheduler=euler"]
    infer = compose_config("infer", tmp_path, ["layering=layeringdiff", *over], resolve=True).layering
    table4 = compose_config(
        "evaluate", tmp_path, ["eval=table4", *over], resolve=True
    ).eval.layerings.layeringdiff
    assert infer.num_inference_steps == table4.num_inference_steps == 7
    assert infer.scheduler == table4.scheduler == "euler"


def test_no_document_claims_25_steps_are_the_papers():
    texts = [
        p.read_text() for p in [*ROOT.glob("docs/*.md"), *ROOT.glob("configs/**/*.yaml"), ROOT / "README.md"]
    ]
    texts += [(ROOT / "layeringdiff" / "pipeline" / "layering.py").read_text()]
    assert not any("paper's timing" in t for t in texts)
