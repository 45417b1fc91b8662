"""data/encode_latents.py: the FBDD latent cache is exact, resumable and refuses mixed settings."""

import importlib.util
from pathlib import Path

import pytest
import torch

from layeringdiff.data.datamodule import LayerDataModule
from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.networks.fbdd import FBDD

SCRIPT = Path(__file__).resolve().parents[1] / "data" / "encode_latents.py"


def load_script():
    spec = importlib.util.spec_from_file_location("encode_latents", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_latent_cache_exact_resumable_and_used_by_the_data_module(tmp_path):
    script = load_script()
    out = tmp_path / "latents"
    common = [
        "experiment=fbdd_smoke",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.num_train=3",
        "data.size=32",
    ]
    args = ["--out", str(out), "--splits", "train", "--batch-size", "2", "--", *common]
    assert script.main(args) == {"train": {"encoded": 3, "skipped": 0}}
    assert script.main(args) == {"train": {"encoded": 0, "skipped": 3}}
    with pytest.raises(SystemExit, match="other settings"):
        script.main(["--out", str(out), "--splits", "train", "--", *common[:-1], "data.size=64"])

    dm = LayerDataModule(size=32, num_train=3, sidecars=[str(out)])
    sample = dm.build("train")[1]
    fbdd = FBDD.from_sd2_inpainting(tmp_path / "cache" / "tiny" / "sd2_inpainting", "background")
    with torch.no_grad():
        for name in ("composite", "foreground", "background"):
            expected = fbdd.encode(sample[name][None]) / fbdd.scaling_factor
            torch.testing.assert_close(sample[f"latent_{name}"][None], expected, atol=1e-5, rtol=1e-5)
    assert sample["key"] == SyntheticLayers(3, size=32, split="train").key(1)
    # written as tar shards with a manifest, not one file per sample
    assert not list(out.glob("*.safetensors")) and (out / "manifest.json").is_file()
    assert [p.name for p in (out / "train").glob("*.tar")] == ["train-000000.tar"]
