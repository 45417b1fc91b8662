"""Resumable evaluation records are reused only under the settings that made them."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from layeringdiff.errors import UserError
from layeringdiff.evaluation.records import RecordsMismatchError, ResultLog, settings_hash

SMALL = {"dataset": {"size": 32, "seed": 0}, "matting": "closed_form", "device": "cpu"}


def test_records_resume_under_the_same_settings(tmp_path):
    log = ResultLog(tmp_path / "r.jsonl", {"copy": SMALL})
    log.append("copy", "s0", mad=0.5)
    again = ResultLog(tmp_path / "r.jsonl", {"copy": OmegaConf.create(SMALL)})  # a config node hashes alike
    assert again.done("copy", "s0") and list(again.of("copy"))[0]["mad"] == 0.5
    # the device is not part of the hash: a CPU run resumes on a GPU
    assert ResultLog(tmp_path / "r.jsonl", {"copy": {**SMALL, "device": "cuda"}}).done("copy", "s0")


def test_other_settings_are_refused_naming_the_difference(tmp_path):
    ResultLog(tmp_path / "r.jsonl", {"copy": SMALL}).append("copy", "s0", mad=0.5)
    bigger = {**SMALL, "dataset": {"size": 64, "seed": 0}}
    with pytest.raises(
        RecordsMismatchError, match=r"'copy' were made with other settings \(dataset.size: 32 -> 64\)"
    ):
        ResultLog(tmp_path / "r.jsonl", {"copy": bigger})
    assert issubclass(RecordsMismatchError, UserError)
    # another method (new to this file) is fine, and so are the old settings
    ResultLog(tmp_path / "r.jsonl", {"copy": SMALL, "germer": bigger}).append("germer", "s0", mad=0.1)
    assert json.loads((tmp_path / "r.jsonl.settings.json").read_text())["germer"]["dataset"]["size"] == 64


def test_records_without_recorded_settings_are_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"method": "copy", "key": "s0", "mad": 0.5}) + "\n")  # made before hashing
    with pytest.raises(RecordsMismatchError, match="'copy' were made under unrecorded settings"):
        ResultLog(path, {"copy": SMALL})
    ResultLog(tmp_path / "x.jsonl", {"copy": SMALL}).append("copy", "s0", mad=0.5)
    (tmp_path / "x.jsonl.settings.json").unlink()  # settings lost: the records' own hash still guards
    with pytest.raises(RecordsMismatchError, match="unrecorded settings"):
        ResultLog(tmp_path / "x.jsonl", {"copy": {**SMALL, "matting": "vitmatte"}})


def test_settings_hash_is_order_independent_and_value_sensitive():
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})
    assert settings_hash({"a": 1, "progress": True}) == settings_hash({"a": 1, "progress": False})


def test_table4_rerun_at_another_size_does_not_reuse_the_records(tmp_path):
    from omegaconf import open_dict
    from test_eval_table4 import compose_eval, copy_methods

    from layeringdiff.tasks.evaluate import evaluate

    def cfg(*over):
        base = ["eval=table4", "eval.dataset.num_samples=2", "eval.figure_samples=0", "eval.lpips=false"]
        c = copy_methods(compose_eval(tmp_path / "run", [*base, "metrics.build_tiny=true", *over]))
        with open_dict(c):
            c.eval.progress = False
        return c

    evaluate(cfg("eval.dataset.size=32"))
    table = (tmp_path / "run" / "table4.md").read_text()
    # size 64 in the same run folder: its records were made at 32, so they are not reused (and the
    # size-32 table is not rewritten from them)
    with pytest.raises(
        RecordsMismatchError, match=r"'copy' were made with other settings \(dataset.size: 32 -> 64\)"
    ):
        evaluate(cfg("eval.dataset.size=64"))
    assert (tmp_path / "run" / "table4.md").read_text() == table
    # more samples at the same size reuse the two finished ones (num_samples is not a setting of a record)
    evaluate(cfg("eval.dataset.size=32", "eval.dataset.num_samples=3"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "table4_samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3


@pytest.mark.parametrize("limit", ["-2", "0", "1.5"])
def test_table4_bad_limit_is_one_line(tmp_path, limit):
    from test_eval_table4 import compose_eval, copy_methods

    from layeringdiff.errors import ConfigError
    from layeringdiff.tasks.evaluate import evaluate

    cfg = copy_methods(
        compose_eval(
            tmp_path,
            ["eval=table4", "eval.dataset.size=32", "metrics.build_tiny=true", f"eval.limit={limit}"],
        )
    )
    with pytest.raises(ConfigError, match=rf"eval.limit must be null or a whole number >= 1, got {limit}"):
        evaluate(cfg)  # -2 gave an empty table and exit 0
