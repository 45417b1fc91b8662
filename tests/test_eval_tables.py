"""Tables 1 and 2 and the comparison on constructed output folders, with tiny extractors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_eval_table4 import compose_eval

from layeringdiff.tasks.evaluate import evaluate


def write_outputs(root: Path, n: int, seed: int, size: int = 32) -> Path:
    """Output folders (docs/architecture.md layout) with a square foreground at a known place."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"p{i:04d}"
        d.mkdir(parents=True)
        alpha = np.zeros((size, size), np.uint8)
        alpha[4 + i : 12 + i, 8:24] = 255  # 8 x 16
        fg = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        bg = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        a = alpha[..., None] / 255.0
        comp = np.rint(fg * a + bg * (1 - a)).astype(np.uint8)
        Image.fromarray(np.dstack([fg, alpha]), "RGBA").save(d / "foreground.png")
        Image.fromarray(bg).save(d / "background.png")
        Image.fromarray(comp).save(d / "composite.png")
        Image.fromarray(alpha, "L").save(d / "alpha.png")
        meta = {
            "prompt": "a red cube on a table",
            "foreground_prompt": "a red cube",
            "background_prompt": "a table",
        }
        (d / "meta.json").write_text(json.dumps(meta))
    return root


def test_table2_values_and_files(tmp_path):
    ours = write_outputs(tmp_path / "ours", 3, 0)
    cfg = compose_eval(tmp_path / "run", [f"+eval.methods.ours={ours}", "eval=table2", "logger=csv"])
    result = evaluate(cfg)
    assert result["ours/occupancy"] == pytest.approx(100 * 128 / 1024)
    assert result["ours/longest_span"] == pytest.approx(50.0)
    assert result["ours/vertical_center"] == pytest.approx(
        100 * (8.5 + 0.5) / 32
    )  # rows 4+i..11+i: mean 7.5+i, i=0..2
    rows = json.loads((tmp_path / "run" / "table2.json").read_text())["rows"]
    assert rows[0]["vertical_center_std"] == pytest.approx(100 * np.std([0, 1, 2]) / 32)
    assert (tmp_path / "run" / "table2_histograms.png").is_file()
    assert "±" in (tmp_path / "run" / "table2.md").read_text()
    logged = list((tmp_path / "run" / "csv").rglob("metrics.csv"))
    assert logged and "table2/ours/occupancy" in logged[0].read_text()
    # re-run in the same folder after a sample folder was removed: its record no longer counts
    import shutil

    shutil.rmtree(ours / "p0002")
    result = evaluate(cfg)
    assert result["ours/vertical_center"] == pytest.approx(100 * (8 + 0.5) / 32)  # samples 0, 1
    assert json.loads((tmp_path / "run" / "table2.json").read_text())["rows"][0]["count"] == 2
    # another threshold in the same folder is refused (its records were made at 0.5)
    from layeringdiff.errors import ConfigError
    from layeringdiff.evaluation.records import RecordsMismatchError

    other = [f"+eval.methods.ours={ours}", "eval=table2", "logger=csv"]
    with pytest.raises(RecordsMismatchError, match=r"with other settings \(threshold: 0.5 -> 0.3\)"):
        evaluate(compose_eval(tmp_path / "run", [*other, "eval.threshold=0.3"]))
    for bad in ("nan", "1.5", "-0.1"):  # NaN counted no pixel: every row empty, exit 0
        with pytest.raises(ConfigError, match=f"eval.threshold must be a number in \\[0, 1\\), got {bad}"):
            evaluate(compose_eval(tmp_path / "run_bad", [*other, f"eval.threshold={bad}"]))


def test_table2_wandb_offline(tmp_path):
    ours = write_outputs(tmp_path / "ours", 2, 0)
    cfg = compose_eval(tmp_path / "run", [f"+eval.methods.ours={ours}", "eval=table2", "logger=wandb"])
    evaluate(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert runs and list(runs[0].rglob("*.wandb"))


def assert_fid_of_each_layer_own_features(cfg, result: dict, methods: dict[str, Path]) -> None:
    """Each row's FG / BG / composite FID equals the Frechet distance of that layer's own stacked
    features (FG: foreground.png over the matte) to its reference set, computed here from the files."""
    from PIL import Image

    from layeringdiff.metrics import extractors
    from layeringdiff.metrics.fid import frechet_distance, image_features, kernel_inception_distance

    net, matte = extractors.inception(cfg), tuple(cfg.metrics.matte)
    suffixes = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
    files = {"fg": "foreground.png", "bg": "background.png", "comp": "composite.png"}
    for name, root in methods.items():
        expected = {}
        for layer, file in files.items():
            ref_dir = Path(cfg.eval.reference[layer])
            refs = sorted(p for p in ref_dir.rglob("*") if p.suffix.lower() in suffixes)
            ref = image_features([Image.open(p) for p in refs], net, matte)
            own = image_features([Image.open(d / file) for d in sorted(root.iterdir())], net, matte)
            expected[layer] = frechet_distance(own, ref)
            assert result[f"{name}/{layer}_fid"] == pytest.approx(expected[layer], rel=1e-6), (name, layer)
            kid = kernel_inception_distance(own, ref, seed=int(cfg.seed), num_subsets=int(cfg.eval.kid_subsets),
                                            max_subset_size=int(cfg.eval.kid_subset_size))  # fmt: skip
            # units as printed in the paper: KID raw (the metric function returns x1e3)
            assert result[f"{name}/{layer}_kid"] == pytest.approx(kid / 1e3, rel=1e-6, abs=1e-12), (
                name,
                layer,
            )
        # the three layers' values differ, so a foreground / background / composite mix-up would show
        assert len({round(v, 6) for v in expected.values()}) == 3, expected


def test_table1_tiny_extractors_and_compare(tmp_path):
    ours = write_outputs(tmp_path / "ours", 4, 0)
    other = write_outputs(tmp_path / "other", 4, 1)
    ref = write_outputs(tmp_path / "ref", 6, 2)
    overrides = [
        "eval=table1",
        f"+eval.methods.ours={ours}",
        f"+eval.methods.other={other}",
        f"eval.reference.fg={ref}",
        f"eval.reference.bg={ref}",
        "eval.segmenter=null",
        "eval.prompts=null",
        "eval.kid_subsets=5",
        "metrics.build_tiny=true",
    ]
    cfg = compose_eval(tmp_path / "run1", overrides)
    r1 = evaluate(cfg)
    for k in ("fg_fid", "fg_kid", "bg_fid", "comp_fid", "fg_clip", "bg_clip", "comp_clip"):
        assert np.isfinite(r1[f"ours/{k}"]), k
    assert 0 <= r1["ours/fg_clip"] <= 100
    table = (tmp_path / "run1" / "table1.md").read_text()
    assert "KID↓ |" in table and "x1e3" not in table.split("Units")[0] and "KID raw" in table
    assert f"{r1['ours/fg_kid']:.4f}" in table  # printed with the digits a raw KID needs
    assert_fid_of_each_layer_own_features(cfg, r1, {"ours": ours, "other": other})
    cache = list((tmp_path / "run1" / "cache" / "fid_reference").glob("*.npy"))
    assert len(cache) == 1  # fg, bg and composite use the same folder here: features computed once
    # a second run in the same folder resumes (nothing recomputed) and gives the identical table
    first = (tmp_path / "run1" / "table1.csv").read_text()
    evaluate(cfg)
    assert (tmp_path / "run1" / "table1.csv").read_text() == first
    # the same folder under other metric settings is refused, and its table is left as it was
    from layeringdiff.evaluation.records import RecordsMismatchError

    with pytest.raises(RecordsMismatchError, match=r"'ours' were made with other settings \(metrics.matte"):
        evaluate(compose_eval(tmp_path / "run1", [*overrides, "metrics.matte=[0,0,0]"]))
    assert (tmp_path / "run1" / "table1.csv").read_text() == first

    cfg2 = compose_eval(
        tmp_path / "cmp",
        ["eval=compare", f"eval.runs=[{tmp_path / 'run1'},{tmp_path / 'run1'}]", "eval.table=table1"],
    )
    evaluate(cfg2)
    md = (tmp_path / "cmp" / "compare_table1.md").read_text()
    assert md.count("| run1") == 4  # 2 runs x 2 methods


def test_table1_prompts_come_from_the_generated_record_before_the_prompt_file(tmp_path):
    from layeringdiff.evaluation.outputs import SampleFolder
    from layeringdiff.evaluation.table1 import sample_prompts

    d = tmp_path / "p0000"
    d.mkdir()
    # what infer.py's batch mode writes: the composite and foreground prompts at the top, the
    # batch line (with its background prompt) under "inputs"
    meta = {
        "prompt": "A red fox sitting in a snowy forest",
        "foreground_prompts": ["A red fox sitting"],
        "inputs": {
            "id": "p0000",
            "prompt": "A red fox sitting in a snowy forest",
            "bg_prompt": "a snowy forest",
        },
    }
    (d / "meta.json").write_text(json.dumps(meta))
    other_file = {"p0000": {"prompt": "A cat on a sofa", "fg_prompt": "A cat", "bg_prompt": "a sofa"}}
    texts = sample_prompts(SampleFolder("p0000", d), other_file)
    assert texts == {"comp": meta["prompt"], "fg": "A red fox sitting", "bg": "a snowy forest"}
    (d / "meta.json").write_text("{}")  # no meta: the prompt file by folder name
    assert sample_prompts(SampleFolder("p0000", d), other_file) == {
        "comp": "A cat on a sofa",
        "fg": "A cat",
        "bg": "a sofa",
    }


class WhiteMatteSegmenter:
    """A constructed FG-MIoU segmenter: the object is every pixel that is not the white matte."""

    def __call__(self, image, prompt):
        assert prompt == "a red cube"
        return (np.asarray(image.convert("RGB")) != 255).any(-1)


def test_table1_fg_miou_through_the_runner(tmp_path):
    from omegaconf import open_dict

    ours = write_outputs(tmp_path / "ours", 3, 0)
    Image.fromarray(np.zeros((32, 32), np.uint8), "L").save(ours / "p0002" / "alpha.png")  # empty alpha
    overrides = ["eval=table1", f"+eval.methods.ours={ours}", "eval.clip=false", "eval.prompts=null"]
    overrides += [f"eval.reference.{k}=null" for k in ("fg", "bg", "comp")]
    cfg = compose_eval(tmp_path / "run", overrides)
    with open_dict(cfg):
        cfg.eval.segmenter = {"_target_": "test_eval_tables.WhiteMatteSegmenter"}
    result = evaluate(cfg)
    # FG over the white matte: the segmenter finds exactly the alpha square (IoU 1); the random
    # background has no pure-white pixel, so the "object" is the whole image: IoU = 8*16 / 32^2
    # units as printed in the paper: FG-MIoU a fraction in [0, 1]
    assert result["ours/fg_miou"] == pytest.approx(1.0)
    assert result["ours/bg_miou"] == pytest.approx(128 / 1024)
    row = json.loads((tmp_path / "run" / "table1.json").read_text())["rows"][0]
    assert row["count"] == 3 and row["miou_empty_alpha"] == 1


def test_table1_rgb_foreground_takes_its_alpha_from_alpha_png(tmp_path):
    from layeringdiff.evaluation.outputs import SampleFolder
    from layeringdiff.evaluation.table1 import _layer_images

    d = write_outputs(tmp_path / "ours", 1, 0) / "p0000"
    rgba = _layer_images(SampleFolder("p0000", d), (0, 255, 0))["fg"]
    Image.open(d / "foreground.png").convert("RGB").save(d / "foreground.png")  # alpha only in alpha.png
    rgb = _layer_images(SampleFolder("p0000", d), (0, 255, 0))["fg"]
    assert np.array_equal(np.asarray(rgb), np.asarray(rgba))
    assert np.asarray(rgb)[0, 0].tolist() == [0, 255, 0]  # outside the square: the matte
