"""Table 4 harness on tiny synthetic test sets with injected methods: maths, files, resume."""

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.metrics import layer_errors
from layeringdiff.tasks.evaluate import evaluate

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")


def compose_eval(tmp_path, overrides):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            "evaluate.yaml",
            overrides=[
                f"paths.output_dir={tmp_path}",
                f"paths.log_dir={tmp_path}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                *overrides,
            ],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    return cfg


def copy_methods(cfg):
    with open_dict(cfg):
        cfg.eval.methods = ["copy"]  # the `copy` layering member: F = B = the composite
        cfg.eval.matting = None  # oracle alpha
    return cfg


@pytest.fixture
def cfg(tmp_path):
    cfg = compose_eval(
        tmp_path,
        [
            "eval=table4",
            "eval.dataset.num_samples=3",
            "eval.dataset.size=32",
            "eval.figure_samples=2",
            "metrics.build_tiny=true",
        ],
    )
    return copy_methods(cfg)


def test_table4_hand_computed_and_resume(cfg, tmp_path):
    result = evaluate(cfg)
    data = SyntheticLayers(3, size=32, seed=0, split="test")
    expected = {"fg_mad": 0.0, "bg_mse": 0.0, "bg_sad": 0.0}
    for i in range(3):
        s = data[i]
        fg = layer_errors(s["composite"], s["foreground"], weight=s["alpha"])  # eval.fg_weight=alpha
        bg = layer_errors(s["composite"], s["background"])
        expected["fg_mad"] += fg["mad"] / 3
        expected["bg_mse"] += bg["mse"] / 3
        expected["bg_sad"] += bg["sad"] / 3
    for k, v in expected.items():
        assert result[f"copy/{k}"] == pytest.approx(v, rel=1e-6)
    assert result["copy/fg_lpips"] >= 0
    for suffix in ("md", "csv", "json"):
        assert (tmp_path / f"table4.{suffix}").is_file()
    assert (tmp_path / "table4_figure.png").is_file()
    lines = (tmp_path / "table4_samples.jsonl").read_text().splitlines()
    assert len(lines) == 3
    first = json.loads((tmp_path / "table4.json").read_text())["rows"]

    # Resume: drop one finished sample and tear the last line; the re-run redoes only that one.
    (tmp_path / "table4_samples.jsonl").write_text("\n".join(lines[:2]) + '\n{"method": "co')
    evaluate(cfg)
    again = json.loads((tmp_path / "table4.json").read_text())["rows"]
    for a, b in zip(first, again):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float) and k != "seconds":
                assert a[k] == pytest.approx(b[k], rel=1e-12)
            elif k != "seconds":
                assert a[k] == b[k]


@pytest.mark.parametrize("fg_weight", ["alpha", "mask", "none"])
def test_table4_fg_weight_hand_computed(cfg, tmp_path, fg_weight):
    with open_dict(cfg):
        cfg.eval.fg_weight = fg_weight
        cfg.eval.lpips = False
        cfg.eval.dataset.num_samples = 1
    result = evaluate(cfg)
    s = SyntheticLayers(1, size=32, seed=0, split="test")[0]
    d = (s["composite"].double() - s["foreground"].double()).abs()  # the copy row: F = C
    a = s["alpha"].double()
    w = {"alpha": a, "mask": (a > 0).double(), "none": torch.ones_like(a)}[fg_weight]
    sad = float((w * d).sum())  # summed over the weighted pixels, divided by all 32*32*3 values
    assert result["copy/fg_mad"] == pytest.approx(sad / d.numel() * 1e3, rel=1e-6)
    assert result["copy/fg_sad"] == pytest.approx(sad / 1e3, rel=1e-6)
    assert result["copy/fg_sad"] == pytest.approx(result["copy/fg_mad"] * d.numel() / 1e6, rel=1e-9)
    bg = float((s["composite"].double() - s["background"].double()).abs().mean()) * 1e3
    assert result["copy/bg_mad"] == pytest.approx(bg, rel=1e-6)  # B is never weighted
    assert result["copy/fg_lpips"] is None
    note = {"alpha": "weighted by the true alpha", "mask": "only where alpha > 0", "none": "unweighted"}
    assert note[fg_weight] in (tmp_path / "table4.md").read_text()


def test_table4_fg_weights_differ_and_refuse_mixing(cfg, tmp_path):
    from layeringdiff.errors import UserError

    with open_dict(cfg):
        cfg.eval.lpips = False
        cfg.eval.dataset.num_samples = 1
    by_alpha = evaluate(cfg)["copy/fg_mad"]
    with open_dict(cfg):
        cfg.eval.fg_weight = "none"
    with pytest.raises(UserError, match="fg_weight"):  # the same folder holds alpha-weighted records
        evaluate(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "unweighted")
    assert evaluate(cfg)["copy/fg_mad"] > by_alpha
    with open_dict(cfg):
        cfg.eval.fg_weight = "premultiplied"
    with pytest.raises(UserError, match="eval.fg_weight must be one of alpha, mask, none"):
        evaluate(cfg)


def test_unknown_runner_is_one_clear_error(cfg):
    with open_dict(cfg):
        cfg.eval.runner = "layeringdiff.metrics.nope.run"
    with pytest.raises(ValueError, match="eval.runner=layeringdiff.metrics.nope.run"):
        evaluate(cfg)


def test_table4_configs_instantiate_offline_matting(tmp_path):
    from hydra.utils import instantiate

    cfg = compose_eval(tmp_path, ["eval=table4_offline"])
    matting = instantiate(cfg.eval.matting)
    assert matting.func.__name__ == "closed_form_matting" and not matting.keywords
    assert list(cfg.eval.methods) == [
        "layeringdiff",
        "germer",
        "germer_inpaint",
        "fba",
        "fba_inpaint",
        "copy",
    ]
    assert {n: cfg.eval.layerings[n].name for n in cfg.eval.methods} == {n: n for n in cfg.eval.methods}
    assert cfg.eval.layerings.germer_inpaint.project is False


def test_table4_rows_are_layering_members_and_fbdd_paths_are_plain_overrides(tmp_path):
    """The rows M1 runs: `eval.methods=[...]` of layering members; FBDD/HFA exports by path."""
    from layeringdiff.evaluation.table4 import build_methods
    from layeringdiff.pipeline.layering import ClassicalLayering, CompositeCopy, GermerLayering

    cfg = compose_eval(
        tmp_path,
        ["eval=table4_offline", "eval.methods=[germer,germer_inpaint,copy]",
         "eval.layerings.layeringdiff.fbdd_foreground=/w/fg", "eval.layerings.layeringdiff.num_inference_steps=3"],
    )  # fmt: skip
    assert cfg.eval.layerings.layeringdiff.fbdd_foreground == "/w/fg"
    assert cfg.eval.layerings.layeringdiff.num_inference_steps == 3
    methods = build_methods(cfg)  # the layeringdiff member is not built: not listed
    assert list(methods) == ["germer", "germer_inpaint", "copy"]
    layerings = [m.layering for m in methods.values()]
    assert [type(x) for x in layerings] == [GermerLayering, ClassicalLayering, CompositeCopy]
    assert [x.name for x in layerings] == ["germer", "germer_inpaint", "copy"]
    assert layerings[1].project is False and layerings[1].hole_threshold == 0.95
    with open_dict(cfg):
        cfg.eval.methods = ["germer", "nope"]
    with pytest.raises(ValueError, match="nope not in eval.layerings"):
        build_methods(cfg)


def test_table4_members_rank_above_the_copy_floor(tmp_path):
    """With the ground-truth alpha, Germer et al. (+ inpainting) beat F = B = composite on the
    background of synthetic composites (a member that did nothing would tie with `copy`)."""
    cfg = compose_eval(
        tmp_path,
        ["eval=table4", "eval.dataset.num_samples=2", "eval.dataset.size=32", "eval.figure_samples=0",
         "eval.lpips=false", "eval.methods=[germer,germer_inpaint,copy]", "eval.matting=null"],
    )  # fmt: skip
    result = evaluate(cfg)
    assert result["germer/bg_mad"] < result["copy/bg_mad"]
    assert result["germer_inpaint/bg_mad"] < result["copy/bg_mad"]
    rows = json.loads((tmp_path / "table4.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["germer", "germer_inpaint", "copy"]


def test_table4_rerun_with_fewer_samples_leaves_the_earlier_records_out(cfg):
    with open_dict(cfg):
        cfg.eval.lpips = False
        cfg.eval.figure_samples = 0
    evaluate(cfg)  # 3 samples recorded
    with open_dict(cfg):
        cfg.eval.limit = 2
    result = evaluate(cfg)  # same run folder, first 2 only: the table is theirs, not all 3 records'
    data = SyntheticLayers(2, size=32, seed=0, split="test")
    expected = (
        sum(
            layer_errors(data[i]["composite"], data[i]["foreground"], weight=data[i]["alpha"])["mad"]
            for i in range(2)
        )
        / 2
    )
    assert result["copy/fg_mad"] == pytest.approx(expected, rel=1e-6)
    row = json.loads((Path(cfg.paths.output_dir) / "table4.json").read_text())["rows"][0]
    assert row["count"] == 2


@pytest.mark.parametrize("error,counted", [("input", True), ("bug", False)])
def test_table4_counts_a_user_error_but_a_bug_surfaces(cfg, monkeypatch, error, counted):
    """A member failing on bad input (a UserError) is a `failed` sample; any other error stops the run."""
    import layeringdiff.evaluation.table4 as table4
    from layeringdiff.evaluation.table4_methods import MattingThenLayering
    from layeringdiff.pipeline.errors import InputError
    from layeringdiff.pipeline.layering import CompositeCopy

    class Failing(CompositeCopy):
        def __call__(self, composite, alpha, generator=None, *, trimap=None):
            raise InputError("no definite foreground") if error == "input" else KeyError("a bug")

    monkeypatch.setattr(table4, "build_methods", lambda cfg: {"failing": MattingThenLayering(Failing())})
    with open_dict(cfg):
        cfg.eval.lpips = False
    if counted:
        with pytest.raises(table4.NothingScoredError, match=r"no sample scored for failing \(3 failed\)"):
            evaluate(cfg)
        row = json.loads((Path(cfg.paths.output_dir) / "table4.json").read_text())["rows"][0]
        assert row["method"] == "failing" and row["failed"] == 3 and row["count"] == 0
    else:
        with pytest.raises(KeyError, match="a bug"):
            evaluate(cfg)


def test_table4_method_failing_on_every_sample_ends_the_run_with_exit_1(cfg, monkeypatch):
    """The smoke chain (set -e) stops when a row would be empty; a method failing on some samples only
    is counted and the run succeeds."""
    import layeringdiff.evaluation.table4 as table4
    from layeringdiff.evaluation.table4_methods import MattingThenLayering
    from layeringdiff.pipeline.errors import InputError
    from layeringdiff.pipeline.layering import CompositeCopy
    from layeringdiff.tasks.common import run_or_exit

    class FailsOn(CompositeCopy):
        def __init__(self, keys: set[int]):
            super().__init__()
            self.keys, self.calls = keys, 0

        def __call__(self, composite, alpha, generator=None, *, trimap=None):
            self.calls += 1
            if self.calls in self.keys:
                raise InputError("no definite foreground")
            return super().__call__(composite, alpha, generator)

    def methods(some: set[int], every: set[int]):
        return lambda cfg: {
            "some": MattingThenLayering(FailsOn(some)),
            "every": MattingThenLayering(FailsOn(every)),
        }

    with open_dict(cfg):
        cfg.eval.lpips = False
        cfg.eval.figure_samples = 0
    monkeypatch.setattr(table4, "build_methods", methods({2}, {1, 2, 3}))
    with pytest.raises(SystemExit) as e:
        run_or_exit(evaluate, cfg)
    assert (
        e.value.code == "error: table4: no sample scored for every (3 failed); the reasons are in the log "
        "and in table4_samples.jsonl (`failed`)"
    )
    rows = {
        r["method"]: r for r in json.loads((Path(cfg.paths.output_dir) / "table4.json").read_text())["rows"]
    }
    assert (rows["some"]["count"], rows["some"]["failed"]) == (2, 1)
    assert (rows["every"]["count"], rows["every"]["failed"]) == (0, 3)
    # the same failures on some samples only: the run succeeds (in a fresh folder)
    with open_dict(cfg):
        cfg.paths.output_dir = str(Path(cfg.paths.output_dir) / "partial")
    monkeypatch.setattr(table4, "build_methods", methods({2}, {1}))
    result = run_or_exit(evaluate, cfg)
    assert result["some/fg_mad"] is not None and result["every/fg_mad"] is not None
