"""shard=I/N and merge=true for eval=generate, table1 and table4: the merged result equals one run's."""

import json
from pathlib import Path

import pytest
from omegaconf import open_dict
from test_eval_table4 import compose_eval, copy_methods
from test_eval_tables import write_outputs

from layeringdiff.errors import ConfigError
from layeringdiff.tasks.evaluate import evaluate


def rows(path: Path) -> list[dict]:
    """A table's rows without the timing column (the only value allowed to differ)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(path.read_text())["rows"]]


def table4_cfg(folder, extra=()):
    cfg = compose_eval(
        folder,
        ["eval=table4", "eval.dataset.num_samples=5", "eval.dataset.size=32", "eval.figure_samples=3",
         "metrics.build_tiny=true", *extra],
    )  # fmt: skip
    return copy_methods(cfg)


def test_table4_shards_then_merge_equal_one_run(tmp_path, monkeypatch):
    one = evaluate(table4_cfg(tmp_path / "one"))
    two = tmp_path / "two"
    assert evaluate(table4_cfg(two, ["shard=0/2"]))["samples"] == 3  # composites 0, 2, 4
    monkeypatch.setenv("RANK", "1")  # the second shard from torchrun's variables
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert evaluate(table4_cfg(two))["samples"] == 2
    assert not (two / "table4.json").exists()  # shards write no table
    merged = evaluate(table4_cfg(two, ["merge=true"]))  # merge ignores RANK / WORLD_SIZE
    assert rows(two / "table4.json") == rows(tmp_path / "one" / "table4.json")
    assert merged["copy/bg_mad"] == one["copy/bg_mad"] and merged["copy/fg_lpips"] == one["copy/fg_lpips"]

    # the shards' records were gathered, not recomputed (a recomputed record has another time)
    def seconds(paths):
        return {
            json.loads(x)["key"]: json.loads(x)["seconds"] for p in paths for x in p.read_text().splitlines()
        }

    gathered = seconds([two / "table4_samples.jsonl"])
    assert len(gathered) == 5 and gathered == seconds(sorted((two / "shards").glob("table4_samples.*.jsonl")))
    figure = (two / "table4_figure.png").read_bytes()
    assert figure == (tmp_path / "one" / "table4_figure.png").read_bytes()


def test_table1_shards_then_merge_equal_one_run(tmp_path):
    ours = write_outputs(tmp_path / "ours", 5, 0)
    ref = write_outputs(tmp_path / "ref", 6, 2)
    over = [
        "eval=table1", f"+eval.methods.ours={ours}", f"eval.reference.fg={ref}", f"eval.reference.bg={ref}",
        "eval.segmenter=null", "eval.prompts=null", "eval.kid_subsets=5", "metrics.build_tiny=true",
    ]  # fmt: skip
    cache = tmp_path / "shared_cache"  # the tiny extractors, built once
    evaluate(compose_eval(tmp_path / "one", [*over, f"paths.cache_dir={cache}"]))
    for i in range(3):
        out = evaluate(compose_eval(tmp_path / "three", [*over, f"shard={i}/3", f"paths.cache_dir={cache}"]))
        assert out["samples"] == len(range(i, 5, 3))
    assert not (tmp_path / "three" / "table1.json").exists()
    evaluate(compose_eval(tmp_path / "three", [*over, "merge=true", f"paths.cache_dir={cache}"]))
    assert rows(tmp_path / "three" / "table1.json") == rows(tmp_path / "one" / "table1.json")
    feats = sorted(p.name for p in (tmp_path / "three" / "table1_features" / "ours").iterdir())
    assert feats == [f"p{i:04d}.npz" for i in range(5)]


def test_generate_shards_equal_one_run(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": f"A {c} cube on a table", "foreground_indices": [0, 1, 2]}
        for c in ("red", "blue", "green")
    ]
    prompts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    over = [
        "eval=generate", f"eval.prompts={prompts}", f"paths.cache_dir={tmp_path / 'cache'}",
        "eval.infer_overrides=['pipeline=tiny','layering=copy','height=64','width=64','num_inference_steps=1',"
        "'progress=false']",
    ]  # fmt: skip
    evaluate(compose_eval(tmp_path / "one", over))
    for i in range(2):
        evaluate(compose_eval(tmp_path / "two", [*over, f"shard={i}/2"]))
    merged = evaluate(compose_eval(tmp_path / "two", [*over, "merge=true"]))
    assert merged["skipped_done"] == 3 and merged["written"] == 0  # the shards did everything
    a, b = tmp_path / "one" / "samples", tmp_path / "two" / "samples"
    folders = sorted(p.name for p in a.iterdir() if p.is_dir())
    assert folders == ["00000", "00001", "00002"] == sorted(p.name for p in b.iterdir() if p.is_dir())
    for name in folders:
        for f in sorted((a / name).iterdir()):
            if f.name == "meta.json":  # the same seed, inputs and settings; only timings and folders differ
                ma, mb = (json.loads((d / name / "meta.json").read_text()) for d in (a, b))
                ma.pop("timings_s"), mb.pop("timings_s")
                ca, cb = ma.pop("config"), mb.pop("config")
                assert ma == mb, name
                differ = {k for k in {*ca, *cb} if ca.get(k) != cb.get(k)}
                assert differ <= {"prompts", "out", "paths"}, differ
            elif f.suffix == ".png":
                assert f.read_bytes() == (b / name / f.name).read_bytes(), (name, f.name)


def test_shard_refused_for_an_evaluation_that_cannot_split(tmp_path):
    cfg = compose_eval(tmp_path, ["eval=table2", "shard=0/2"])
    with open_dict(cfg):
        cfg.eval.methods = {}
    with pytest.raises(ConfigError, match="shard= / merge= apply to eval=generate, table1 and table4"):
        evaluate(cfg)
    with pytest.raises(ConfigError, match="expected I/N"):
        evaluate(table4_cfg(tmp_path / "bad", ["shard=2"]))
