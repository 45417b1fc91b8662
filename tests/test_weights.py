import json

import pytest

from layeringdiff.weights import MissingWeightsError, require, resolve_file, resolve_pretrained


def _folder(tmp_path, with_weights=True):
    root = tmp_path / "model"
    (root / "unet").mkdir(parents=True)
    (root / "unet" / "config.json").write_text(json.dumps({"in_channels": 9}))
    if with_weights:
        (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    return root


def test_local_folder_resolves(tmp_path):
    root = _folder(tmp_path)
    assert resolve_pretrained(root, "UNet", subfolder="unet") == root


def test_missing_folder_names_component_and_path(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        resolve_pretrained(tmp_path / "nowhere", "SD2-inpainting UNet")
    msg = str(e.value)
    assert "SD2-inpainting UNet" in msg and "nowhere" in msg and "\n" not in msg


def test_partial_folder_is_refused(tmp_path):
    root = _folder(tmp_path, with_weights=False)
    with pytest.raises(MissingWeightsError, match="no weight file"):
        resolve_pretrained(root, "UNet", subfolder="unet")
    with pytest.raises(MissingWeightsError, match="missing model_index.json"):
        resolve_pretrained(root, "UNet", required=("model_index.json",), need_weights=False)


def test_hub_id_not_in_cache_fails_offline_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError, match="not-a-real-org/not-a-model"):
        resolve_pretrained("not-a-real-org/not-a-model", "ViTMatte")


def test_require_reports_every_missing_component(tmp_path):
    root = _folder(tmp_path)
    with pytest.raises(MissingWeightsError) as e:
        require(
            {
                "UNet": {"name_or_path": root, "subfolder": "unet"},
                "SAM": {"name_or_path": tmp_path / "sam"},
                "Inception": {"name_or_path": tmp_path / "inception.pt", "file": True},
            }
        )
    msg = str(e.value)
    assert "SAM" in msg and "Inception" in msg and "UNet" not in msg


def test_resolve_file(tmp_path):
    f = tmp_path / "w.pt"
    f.write_bytes(b"0")
    assert resolve_file(f, "Inception") == f
    with pytest.raises(MissingWeightsError, match="put it there"):
        resolve_file(tmp_path / "no.pt", "Inception", hint="put it there")
