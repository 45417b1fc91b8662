"""``infer(cfg)`` and ``infer.py``: the no-argument run, real-image/text/batch modes, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from PIL import Image

from layeringdiff.images import ImageReadError
from layeringdiff.pipeline.errors import InputError, NoForegroundError
from layeringdiff.tasks.infer import infer
from layeringdiff.tasks.infer_inputs import per_layer
from layeringdiff.weights import MissingWeightsError

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_FILES = {
    "composite.png",
    "foreground.png",
    "background.png",
    "alpha.png",
    "layers.psd",
    "layers.ora",
    "meta.json",
    "preview.png",
}


def tiny_batch_overrides(prompts, out) -> list[str]:
    """A batch run of the tiny pipeline at 64 px with one sampler step."""
    return [
        "pipeline=tiny",
        f"prompts={prompts}",
        f"out={out}",
        "height=64",
        "width=64",
        "num_inference_steps=1",
    ]


def make_cfg(tmp_path, overrides=(), tiny_cache=None):
    base = [
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.cache_dir={tiny_cache or tmp_path / 'cache'}",
        "progress=false",
    ]
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("infer", overrides=base + list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run, the task sees no hydra node
    return cfg


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "tiny_cache"  # shared with tests/test_pipeline.py


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A small real photo (the bundled sample, downscaled) with a mask, trimap and alphas."""
    d = tmp_path_factory.mktemp("photo")
    img = Image.open(ROOT / "data/samples/astronaut.png").resize((96, 96), Image.BILINEAR)
    img.save(d / "photo.png")
    mask = Image.open(ROOT / "data/samples/astronaut_mask.png").resize((96, 96), Image.NEAREST)
    mask.save(d / "mask.png")
    m = np.asarray(mask) > 127
    kernel = np.ones((5, 5), np.uint8)
    inner, outer = cv2.erode(m.astype(np.uint8), kernel), cv2.dilate(m.astype(np.uint8), kernel)
    Image.fromarray(np.where(inner, 255, np.where(outer, 128, 0)).astype(np.uint8)).save(d / "trimap.png")
    Image.fromarray((m * 255).astype(np.uint8)).save(d / "alpha.png")
    small = np.zeros((96, 96), np.uint8)
    small[10:30, 10:30] = 255
    Image.fromarray(small).save(d / "alpha_small.png")
    Image.fromarray(np.zeros((96, 96), np.uint8)).save(d / "alpha0.png")
    Image.fromarray(np.full((96, 96), 255, np.uint8)).save(d / "alpha1.png")
    return d


def check_output(out: Path, n_layers=1) -> dict:
    names = set(os.listdir(out))
    if n_layers == 1:
        assert names == OUTPUT_FILES
    else:
        assert {f"foreground_{i}.png" for i in range(1, n_layers + 1)} <= names and "layers.psd" in names
    meta = json.loads((out / "meta.json").read_text())
    assert meta["recomposite_max_error"] < 1e-3 or meta["layering"] == "layeringdiff"
    assert {"torch", "diffusers", "transformers", "pymatting"} <= set(meta["versions"])
    assert meta["timings_s"]["pipeline_total"] > 0 and meta["config"]["layering"]["name"] == meta["layering"]
    return meta


@pytest.mark.parametrize(
    "args,matting",
    [
        (["box=[5,5,90,96]"], "closed_form"),
        (["mask={d}/mask.png"], "closed_form"),
        (["trimap={d}/trimap.png"], "closed_form"),
        (["alpha={d}/alpha.png"], "given"),
    ],
)
def test_real_image_modes(tmp_path, photo, args, matting):
    args = [a.format(d=photo) for a in args]
    out = Path(
        infer(make_cfg(tmp_path, [f"image={photo}/photo.png", f"out={tmp_path}/o", *args]))["out_dirs"][0]
    )
    assert out == tmp_path / "o"
    assert check_output(out)["matting"] == [matting]


def test_real_image_two_layers(tmp_path, photo):
    cfg = make_cfg(
        tmp_path,
        [
            f"image={photo}/photo.png",
            f"out={tmp_path}/o",
            f"alpha=[{photo}/alpha_small.png,{photo}/alpha.png]",
        ],
    )
    out = Path(infer(cfg)["out_dirs"][0])
    meta = check_output(out, n_layers=2)
    assert meta["num_layers"] == 2 and meta["recomposite_max_error"] < 1e-3


@pytest.mark.parametrize("dtype", ["auto", "bf16"])  # bf16: the GPU dtype path's casts, run on the CPU
def test_text_mode_tiny_layeringdiff(tmp_path, tiny_cache, dtype):
    over = ["pipeline=tiny", "layering=layeringdiff", "prompt=A bird flying at sunset over the mountains", "foreground_indices=[0,1,2]",
            "height=64", "width=64", "num_inference_steps=2", f"out={tmp_path}/o", "device=cpu", f"dtype={dtype}"]  # fmt: skip
    meta = check_output(Path(infer(make_cfg(tmp_path, over, tiny_cache))["out_dirs"][0]))
    assert meta["mode"] == "text" and meta["foreground_prompts"] == ["A bird flying"]
    assert (
        meta["foreground_indices"] == [[0, 1, 2]]
        and meta["matting"] == ["vitmatte"]
        and "generate" in meta["timings_s"]
    )


def test_batch_mode_is_resumable_and_skips_bad_prompts(tmp_path, tiny_cache):
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "A bird flying", "foreground_indices": [0, 1]},
        {"prompt": "A cat", "foreground_indices": [7], "id": "bad"},
        {
            "id": "two",
            "prompt": "A cat on a glass table",
            "foreground_indices": [[0, 1], [4, 5]],
            "seed": 3,
            "background_prompt": "a glass table",
        },
    ]
    prompts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    over = tiny_batch_overrides(prompts, f"{tmp_path}/batch")
    first = infer(make_cfg(tmp_path, over, tiny_cache))
    assert first["written"] == 2 and [f["id"] for f in first["failed"]] == ["bad"]
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["00000", "batch_summary.json", "two"]
    two = json.loads((tmp_path / "batch/two/meta.json").read_text())
    assert two["seed"] == 3 and two["inputs"]["background_prompt"] == "a glass table"  # the whole line
    assert (tmp_path / "batch/two/foreground_2.png").is_file()
    again = infer(make_cfg(tmp_path, over, tiny_cache))
    assert again["written"] == 0 and again["skipped_done"] == 2
    # a non-empty folder without meta.json in the way is a failed item, not the end of the batch
    (tmp_path / "batch" / "bad").mkdir()
    (tmp_path / "batch" / "bad" / "notes.txt").write_text("mine")
    lines[1]["foreground_indices"] = [0]
    prompts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    third = infer(make_cfg(tmp_path, over, tiny_cache))
    assert [f["id"] for f in third["failed"]] == ["bad"] and "already exists" in third["failed"][0]["error"]
    # an output made from another prompt under the same id is reported, not taken as done
    lines[2]["prompt"] = "A dog on a glass table"
    prompts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    fourth = infer(make_cfg(tmp_path, over, tiny_cache))
    assert fourth["skipped_done"] == 1 and fourth["written"] == 0
    assert [f["id"] for f in fourth["failed"]] == ["two", "bad"]
    assert "another prompt" in fourth["failed"][0]["error"]
    assert json.loads((tmp_path / "batch/two/meta.json").read_text())["prompt"] == "A cat on a glass table"


def test_per_layer():
    assert per_layer([0, 1, 2], 1) == [[0, 1, 2]]
    assert per_layer([[0, 1], [5]], 1) == [[0, 1], [5]]
    assert per_layer("a cat", 0) == ["a cat"] and per_layer(["a", "b"], 0) == ["a", "b"]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "text.png").write_text("not an image")
    Image.new("RGB", (1, 1)).save(d / "tiny.png")
    Image.new("RGB", (5000, 8)).save(d / "huge.png")
    return d


@pytest.mark.parametrize(
    "args,error,match",
    [
        (["image={b}/missing.png", "box=[0,0,5,5]"], ImageReadError, "no such file"),
        (["image={b}/text.png", "box=[0,0,5,5]"], ImageReadError, "not a readable image"),
        (["image={b}/tiny.png", "box=[0,0,1,1]"], InputError, "1x1"),
        (["image={b}/huge.png", "box=[0,0,5,5]"], InputError, "5000x8"),
        (["image={p}/photo.png"], InputError, "give the foreground"),
        (["image={p}/photo.png", "box=[0,0,5,5]", "mask={p}/mask.png"], InputError, "only one of"),
        (["image={p}/photo.png", "alpha={p}/alpha0.png"], InputError, "all 0"),
        (["image={p}/photo.png", "alpha={p}/alpha1.png"], InputError, "all 1"),
        (["image={p}/photo.png", "mask={b}/tiny.png"], InputError, "1x1 but the image is 96x96"),
        (["image={p}/photo.png", "foreground=a cat"], MissingWeightsError, "Grounding DINO weights"),
        (["prompt=a bird", "foreground_indices=[5]"], InputError, "out of range"),
        (["prompt=a bird", "foreground_indices=[]"], InputError, "empty"),
        (["prompt=a bird", "foreground_indices=[0]"], MissingWeightsError, "SDXL"),
        (
            ["image={p}/photo.png", "box=[5,5,90,96]", "layering=layeringdiff"],
            MissingWeightsError,
            "fbdd_foreground",
        ),
        (["image={p}/photo.png", "box=[5,5,90,96]", "out={b}/text.png/x"], PermissionError, "cannot create"),
    ],
)
def test_bad_input_one_line_nothing_written(tmp_path, photo, bad_files, args, error, match):
    cfg = make_cfg(tmp_path, [a.format(b=bad_files, p=photo) for a in args])
    with pytest.raises(error, match=match) as e:
        infer(cfg)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run" / "layers").exists()


def test_no_foreground_detected(tmp_path, photo, tiny_cache):
    cfg = make_cfg(
        tmp_path,
        [
            "pipeline=tiny",
            f"image={photo}/photo.png",
            "foreground=a cat",
            "pipeline.foreground.box_threshold=1.0",
        ],
        tiny_cache,
    )
    with pytest.raises(NoForegroundError, match="best box score .* box="):
        infer(cfg)
    assert not (tmp_path / "run" / "layers").exists()


def run_cli(tmp_path, run_dir, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "infer.py"), f"hydra.run.dir={tmp_path / run_dir}", "progress=false", *args],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip


def test_cli_no_arguments_and_bad_input_exit_codes(tmp_path, bad_files):
    """`python infer.py` with no arguments decomposes the bundled real photo (README command 1)."""
    ok = run_cli(tmp_path, "run")
    assert ok.returncode == 0, ok.stderr
    *_, printed_dir, printed_preview = ok.stdout.strip().splitlines()
    out = Path(printed_dir)
    assert out == tmp_path / "run" / "layers"
    assert Path(printed_preview) == out / "preview.png" and Path(printed_preview).is_file()  # printed last
    meta = check_output(out)
    assert meta["mode"] == "image" and meta["matting"] == ["closed_form"] and meta["layering"] == "classical"
    sample = np.asarray(Image.open(ROOT / "data/samples/astronaut.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "composite.png")), sample)
    alpha = np.asarray(Image.open(out / "alpha.png"))
    mask = np.asarray(Image.open(ROOT / "data/samples/astronaut_mask.png")) > 127
    assert alpha[mask].mean() > 200 and alpha[~mask].mean() < 60  # the matte follows the rough mask
    assert 0 < ((alpha > 0) & (alpha < 255)).mean() < 0.2  # with soft edges
    from psd_tools import PSDImage  # the layered file shows the photo again

    shown = np.asarray(PSDImage.open(out / "layers.psd").composite().convert("RGB")).astype(int)
    assert np.abs(shown - sample.astype(int)).max() <= 2
    bad = run_cli(tmp_path, "bad", f"image={bad_files}/text.png", "box=[0,0,5,5]")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"error: {bad_files}/text.png: not a readable image (cannot identify image file '{bad_files}/text.png')"
    ]
    assert "Traceback" not in bad.stderr + bad.stdout


@pytest.mark.parametrize(
    "args,match",
    [
        (["image={b}/huge.png", "box=[0,0,5,5]"], "huge.png is 5000x8"),
        (["prompt=a bird", "foreground_indices=[0]", "height=100"], "height=100"),
        (["image={p}/photo.png", "box=[200,0,500,50]"], "outside the 96x96 image"),
        (["image={p}/photo.png", "box=[0,0,5]"], "four numbers"),
    ],
)
def test_size_errors_come_before_any_model_is_loaded(tmp_path, bad_files, photo, monkeypatch, args, match):
    import layeringdiff.tasks.infer as infer_module

    def no_models(*a, **k):
        raise AssertionError("models were loaded before the size check")

    monkeypatch.setattr(infer_module, "build_pipeline", no_models)
    monkeypatch.setattr(infer_module, "check_weights", lambda *a, **k: None)
    with pytest.raises(InputError, match=match):
        infer(make_cfg(tmp_path, [a.format(b=bad_files, p=photo) for a in args]))


@pytest.mark.parametrize("member", ["germer", "germer_inpaint", "copy"])
def test_every_weightless_layering_member_runs_from_infer(tmp_path, photo, member):
    """`layering=` picks a member of configs/layering/; meta.json names it and the layers follow it."""
    cfg = make_cfg(
        tmp_path,
        [f"image={photo}/photo.png", f"alpha={photo}/alpha.png", f"out={tmp_path}/o", f"layering={member}"],
    )
    out = Path(infer(cfg)["out_dirs"][0])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["layering"] == member == meta["config"]["layering"]["name"]
    composite = np.asarray(Image.open(out / "composite.png"))
    background = np.asarray(Image.open(out / "background.png"))
    if member == "copy":  # F = B = the composite
        np.testing.assert_array_equal(background, composite)
    else:  # Germer et al.: the background differs from the composite under the foreground
        assert np.abs(background.astype(int) - composite.astype(int)).max() > 10


def test_unknown_layering_member_is_refused_when_composing(tmp_path):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="layering"):
        make_cfg(tmp_path, ["layering=magic"])
