"""The data/ command-line scripts: shards from folders (with a bad file), test lists, one-line errors."""

import importlib.util
import json
from pathlib import Path

import pytest

from layeringdiff.data.pairs import read_pair_list

DATA = Path(__file__).resolve().parents[1] / "data"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"data_{name}", DATA / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def layout(folder_layout):
    return folder_layout(8, 8, size=48, seed=3, megapixels=(0.003, 0.005), testval_fraction=0.5)


def test_make_shards_from_folders_records_bad_files(layout, tmp_path):
    broken = sorted((layout / "MAGICK" / "images").rglob("*.png"))[0]
    good = broken.read_bytes()
    broken.write_bytes(good[:100])
    try:
        args = ["--out", str(tmp_path), "--split", "train", "--size", "32", "--per-shard", "3",
                "--foregrounds", str(layout / "MAGICK"), "--backgrounds", str(layout / "BG-20k"),
                "--fractions", "1,0,0"]  # fmt: skip
        manifest = _script("make_shards")(args)
    finally:
        broken.write_bytes(good)
    assert manifest["num_samples"] + manifest["num_skipped"] == 8 and manifest["num_skipped"] == 1
    assert str(broken) in manifest["skipped"][0]["reason"]
    assert all(" | " in src for src in manifest["samples"].values())  # fg file | bg file
    assert json.loads((tmp_path / "train" / "manifest.json").read_text())["num_shards"] == 3


def test_make_test_list_real_and_synthetic(layout, tmp_path):
    out = _script("make_test_list")(
        [
            "--foregrounds",
            str(layout / "MAGICK"),
            "--backgrounds",
            str(layout / "BG-20k"),
            "--num",
            "2",
            "--fractions",
            "0.5,0,0.5",
            "--out",
            str(tmp_path / "t.tsv"),
        ]  # fmt: skip
    )
    pairs = read_pair_list(out)
    assert len(pairs) == 2 and all(p.bg_id.startswith("testval_") for p in pairs)
    syn = read_pair_list(
        _script("make_test_list")(["--synthetic", "--num", "5", "--out", str(tmp_path / "s.tsv")])
    )
    assert [p.key for p in syn] == [f"synthetic-test-s0-{i:07d}" for i in range(5)]


def test_scripts_refuse_bad_sources_in_one_line(tmp_path):
    with pytest.raises(SystemExit) as err:
        _script("make_shards")(
            ["--out", str(tmp_path), "--foregrounds", str(tmp_path / "none"), "--backgrounds", str(tmp_path)]
        )
    assert "no such folder" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SystemExit) as err:
        _script("make_test_list")(
            ["--foregrounds", str(tmp_path), "--backgrounds", str(tmp_path), "--out", str(tmp_path / "x.tsv")]
        )
    assert "no image files" in str(err.value)
    from layeringdiff.data.preview import main as preview

    for argv, expected in (
        (["data=folders", f"foregrounds={tmp_path / 'none'}", f"backgrounds={tmp_path}"], "no such folder"),
        (["data=folders"], "needs the argument foregrounds"),
        (["data=shards", f"root={tmp_path}"], "no shard manifest"),
    ):
        with pytest.raises(SystemExit) as err:
            preview([*argv, f"out={tmp_path / 'grid.png'}"])
        assert expected in str(err.value) and "\n" not in str(err.value)
