"""infer.py refuses bad numbers in one line before any model is loaded; a bad line of a batch fails
that line only and the batch exits non-zero; oversized images are refused from their header."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageFile
from test_images import large_canvas_png
from test_infer import ROOT, make_cfg, photo, run_cli, tiny_batch_overrides, tiny_cache  # noqa: F401 (fixtures)

from layeringdiff.pipeline.errors import InputError
from layeringdiff.tasks.infer import infer
from layeringdiff.tasks.infer_batch import batch_failure

TEXT = ["prompt=a bird", "foreground_indices=[0]"]


@pytest.mark.parametrize(
    "args, match",
    [
        (["box=[0,0,5,5]", "seed=nan"], r"seed must be a whole number from 0 to \d+, got nan"),
        (["box=[0,0,5,5]", "seed=-3"], r"seed must be a whole number from 0 to \d+, got -3"),
        ([*TEXT, "height=nan"], r"height must be a whole number from 16 to 4096, got nan"),
        ([*TEXT, "width=64.5"], r"width must be a whole number from 16 to 4096, got 64.5"),
        ([*TEXT, "guidance_scale=nan"], r"guidance_scale must be a number from 0 to 100, got nan"),
        (
            [*TEXT, "num_inference_steps=-1"],
            r"num_inference_steps must be a whole number from 1 to 1000, got -1",
        ),
        (
            [*TEXT, "num_inference_steps=0"],
            r"num_inference_steps must be a whole number from 1 to 1000, got 0",
        ),
    ],
)
def test_bad_numbers_are_one_line_before_any_model(tmp_path, photo, args, match):  # noqa: F811
    image = [f"image={photo}/photo.png"] if "box=[0,0,5,5]" in args else []
    with pytest.raises(InputError, match=match) as err:
        infer(make_cfg(tmp_path, image + args))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / "layers").exists()


def test_an_oversized_image_is_refused_without_decoding_it(tmp_path, monkeypatch):
    huge = tmp_path / "huge.png"
    huge.write_bytes(large_canvas_png(9000, 9000))  # 1.6 GB once decoded to float

    originals = {ImageFile.ImageFile: ImageFile.ImageFile.load, Image.Image: Image.Image.load}

    def guarded(cls):
        def load(self):
            if self.size == (9000, 9000):
                raise AssertionError("decoded")
            return originals[cls](self)

        return load

    for cls in originals:  # only the huge file may not be decoded; the photo is
        monkeypatch.setattr(cls, "load", guarded(cls))
    for key in ("image", "mask"):
        args = (
            [f"image={huge}", "box=[0,0,5,5]"]
            if key == "image"
            else [f"image={ROOT}/data/samples/astronaut.png", f"mask={huge}"]
        )
        with pytest.raises((InputError, ValueError), match="9000x9000") as err:
            infer(make_cfg(tmp_path, args))
        assert "decoded" not in str(err.value)


def _bad_seed_batch(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "A bird flying", "foreground_indices": [0, 1], "id": "good"},
        {"prompt": "A bird flying", "foreground_indices": [0, 1], "id": "nan_seed", "seed": float("nan")},
        {"prompt": "A bird flying", "foreground_indices": [0, 1], "id": "text_seed", "seed": "seven"},
    ]
    prompts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return prompts, tiny_batch_overrides(prompts, f"{tmp_path}/batch")


def test_a_bad_seed_fails_its_line_only_and_the_batch_exits_non_zero(tmp_path, tiny_cache):  # noqa: F811
    prompts, over = _bad_seed_batch(tmp_path)
    result = infer(make_cfg(tmp_path, over, tiny_cache))
    assert result["written"] == 1 and [f["id"] for f in result["failed"]] == ["nan_seed", "text_seed"]
    assert "seed must be a whole number" in result["failed"][0]["error"]
    message = batch_failure(result)
    assert message.startswith("2 of 3 prompts failed (first: nan_seed: seed must be a whole number")
    assert batch_failure({**result, "failed": []}) is None


@pytest.mark.slow
def test_the_command_line_exits_1_after_a_batch_with_a_failed_line(tmp_path, tiny_cache):  # noqa: F811
    prompts, over = _bad_seed_batch(tmp_path)
    cli = run_cli(
        tmp_path,
        "cli",
        *over[:1],
        f"prompts={prompts}",
        f"out={tmp_path}/batch2",
        *over[3:],
        f"paths.cache_dir={tiny_cache}",
    )
    assert cli.returncode == 1, cli.stderr[-2000:]
    assert (tmp_path / "batch2" / "good" / "meta.json").is_file()
    assert cli.stderr.strip().splitlines()[-1].startswith("error: 2 of 3 prompts failed")
