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
