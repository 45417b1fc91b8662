"""The study's defaults are the paper's design: 24 participants, the 15 fixed prompts x 4 methods,
every participant rates every pair, and a method folder that lacks one of the prompts stops the
server with one line naming the folder and the prompt id."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from layeringdiff.study.__main__ import compose_config, main
from layeringdiff.study.app import StudySettings, create_app
from layeringdiff.study.catalog import StudySetupError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
METHODS = ("ours", "baseline_a", "baseline_b", "baseline_c")
STUDY15 = [
    json.loads(line) for line in (ROOT / "data" / "prompts" / "study15.jsonl").read_text().splitlines()
]


def write_outputs(folder: Path, ids, shade: int) -> None:
    """One tiny output folder (foreground RGBA, background, composite) per prompt id."""
    for n, pid in enumerate(ids):
        out = folder / pid
        out.mkdir(parents=True)
        rgb = np.full((8, 8, 3), (shade + 7 * n) % 256, np.uint8)
        Image.fromarray(np.dstack([rgb, np.full((8, 8), 200, np.uint8)])).save(out / "foreground.png")
        Image.fromarray(rgb[..., ::-1].copy()).save(out / "background.png")
        Image.fromarray(rgb).save(out / "composite.png")


@pytest.fixture
def four_methods(tmp_path):
    ids = [r["id"] for r in STUDY15]
    dirs = {}
    for k, m in enumerate(METHODS):
        dirs[m] = tmp_path / "outputs" / m / "samples"
        write_outputs(dirs[m], ids + ["n0001"], 40 * k)  # n0001: an extra output, not in the study
    return dirs


def overrides(dirs, tmp_path, *extra):
    return [f"methods.{m}={d}" for m, d in dirs.items()] + [
        f"db={tmp_path / 'study.db'}",
        *extra,
    ]


@pytest.fixture(autouse=True)
def repo_root(monkeypatch):
    monkeypatch.setenv("LAYERINGDIFF_ROOT", str(ROOT))  # the config's ${root_dir}


def test_config_defaults_are_the_papers_study():
    cfg = compose_config([], CONFIGS)
    settings = StudySettings.from_config(cfg)
    assert settings.participants == 24 and settings.items_per_participant is None
    assert settings.require_every_prompt is True and settings.methods == {}
    assert Path(settings.prompts) == ROOT / "data" / "prompts" / "study15.jsonl"
    assert len(STUDY15) == 15 and len({r["id"] for r in STUDY15}) == 15
    # the dataclass defaults agree with the config file
    assert StudySettings(methods={}, db="x").participants == 24
    assert StudySettings(methods={}, db="x").require_every_prompt is True


def test_default_study_is_15_prompts_x_4_methods_for_24_participants(four_methods, tmp_path):
    app = create_app(compose_config(overrides(four_methods, tmp_path), CONFIGS))
    study = app.extensions["study"]
    assert sorted(study.catalog.examples) == sorted(r["id"] for r in STUDY15)  # n0001 is left out
    assert len(study.catalog.method_ids) == 4 and len(study.catalog.items) == 60
    assert len(study.participants) == 24
    for token in study.participants:
        assert sorted(study.order(token)) == sorted(study.catalog.items)  # every pair, each once
    for r in STUDY15:  # the texts shown come from the prompt file
        ex = study.catalog.examples[r["id"]]
        assert (ex.prompt, ex.foreground_prompt, ex.background_prompt) == (
            r["prompt"],
            r["fg_prompt"],
            r["bg_prompt"],
        )
    # each item shows its own method's files
    for item in study.catalog.items.values():
        assert item.files["composite"] == four_methods[item.method] / item.example / "composite.png"


def test_a_method_folder_missing_a_prompt_stops_the_server(four_methods, tmp_path, capsys):
    shutil.rmtree(four_methods["baseline_b"] / "n0038")
    cfg = compose_config(overrides(four_methods, tmp_path), CONFIGS)
    with pytest.raises(StudySetupError) as err:
        create_app(cfg)
    assert str(err.value) == f"method folder {four_methods['baseline_b']} has no output for prompt id n0038"
    shutil.rmtree(four_methods["baseline_b"] / "n0532")
    argv = ["links", "--config-dir", str(CONFIGS), *overrides(four_methods, tmp_path)]
    assert main(argv) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1, err_lines
    assert str(four_methods["baseline_b"]) in err_lines[0] and "prompt id n0038 (and 1 more)" in err_lines[0]
    # require_every_prompt=false: the outputs every method has, as before (n0001 has no prompt text)
    cfg = compose_config(overrides(four_methods, tmp_path, "require_every_prompt=false"), CONFIGS)
    with pytest.raises(StudySetupError, match="no prompt for example 'n0001'"):
        create_app(cfg)
    for folder in four_methods.values():
        shutil.rmtree(folder / "n0001")
    assert len(create_app(cfg).extensions["study"].catalog.examples) == 13


def test_two_outputs_for_one_prompt_are_refused(four_methods, tmp_path):
    write_outputs(four_methods["baseline_c"] / "again", ["n0000"], 9)
    with pytest.raises(StudySetupError, match=r"has 2 outputs for prompt id n0000: again/n0000, n0000"):
        create_app(compose_config(overrides(four_methods, tmp_path), CONFIGS))


def test_an_empty_prompt_file_is_refused(four_methods, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(StudySetupError, match="holds no prompt"):
        create_app(compose_config(overrides(four_methods, tmp_path, f"prompts={empty}"), CONFIGS))
