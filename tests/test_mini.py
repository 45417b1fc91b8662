"""LayeringDiff-mini pieces: the VAE module, the base repo around it, configs, reports (docs/mini.md)."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from layeringdiff.mini import report
from layeringdiff.mini.repo import build_repo
from layeringdiff.tiny.sd2 import VAE_CONFIG
from layeringdiff.training.vae_module import VAEModule, psnr, random_crop

UNET = {
    "sample_size": 8,
    "in_channels": 9,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4],
    "norm_num_groups": 8,
    "use_linear_projection": True,
}


def _batch(n: int = 2, size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    b = {k: torch.rand(n, 3, size, size, generator=g) for k in ("composite", "foreground", "background")}
    b["alpha"] = torch.rand(n, 1, size, size, generator=g)
    return b


def test_psnr_matches_the_closed_form():
    x = torch.full((2, 3, 8, 8), 0.5)
    # MSE 0.01 -> 20 dB; MSE 1e-4 -> 40 dB
    assert psnr(x + 0.1, x).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert float(psnr(x, x + torch.tensor([0.01, 0.1]).view(2, 1, 1, 1))[0]) == pytest.approx(40.0, abs=1e-3)


def test_random_crop_takes_windows_of_the_images():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    crops = random_crop(images, 4, torch.Generator().manual_seed(3))
    assert crops.shape == (2, 1, 4, 4)
    for im, crop in zip(images, crops):
        y, x = divmod(
            int((im[0] == crop[0, 0, 0]).nonzero()[0][0] * 6 + (im[0] == crop[0, 0, 0]).nonzero()[0][1]), 6
        )
        assert torch.equal(im[:, y : y + 4, x : x + 4], crop)


def test_vae_module_trains_and_exports_unit_variance_latents(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    module = VAEModule(VAE_CONFIG, optimizer=partial(torch.optim.Adam, lr=1e-3), crop=16)
    batch = _batch()
    opt = module.configure_optimizers()
    first = None
    for step in range(8):  # the same batch: the reconstruction loss must fall
        terms = module.loss(module.images(batch), torch.Generator().manual_seed(step))
        first = first if first is not None else float(terms["loss"])
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    assert float(terms["loss"]) < first
    assert set(terms) == {"loss", "l1", "l2", "kl"} and float(terms["kl"]) >= 0
    with pytest.raises(ValueError, match="latent std"):
        module.export(tmp_path / "vae")
    module.on_validation_epoch_start()
    module.eval()
    with torch.no_grad():
        module.validation_step(batch, 0)
    module.on_validation_epoch_end()
    out = module.export(tmp_path / "vae")
    vae = AutoencoderKL.from_pretrained(out)
    with torch.no_grad():
        latents = vae.encode(module.images(batch) * 2 - 1).latent_dist.mode() * vae.config.scaling_factor
    assert float(latents.std()) == pytest.approx(1.0, rel=1e-3)


def test_vae_module_refuses_unknown_image_keys():
    with pytest.raises(ValueError, match="image_keys"):
        VAEModule(VAE_CONFIG, image_keys=["alpha"])


@pytest.fixture(scope="module")
def mini_repo(tmp_path_factory):
    from diffusers import AutoencoderKL

    root = tmp_path_factory.mktemp("mini")
    torch.manual_seed(1)
    vae = AutoencoderKL(**{**VAE_CONFIG, "scaling_factor": 0.7})
    vae.save_pretrained(root / "vae")
    return build_repo(root / "sd2_mini", root / "vae", unet_config=UNET), vae


def test_mini_repo_builds_fbdd_through_the_paper_code_path(mini_repo, tmp_path):
    from layeringdiff.networks.fbdd import FBDD

    path, vae = mini_repo
    fbdd = FBDD.from_sd2_inpainting(path, "background", alpha_init="mask_mean", null_prompt_cache=tmp_path)
    assert fbdd.vae_factor == 4 and fbdd.unet.config.in_channels == 2 * 4 + 16
    assert fbdd.scaling_factor == pytest.approx(0.7)
    assert fbdd.noise_scheduler.config.prediction_type == "v_prediction"
    for name, value in vae.state_dict().items():  # the trained VAE, not a fresh one
        assert torch.equal(fbdd.vae.state_dict()[name], value), name
    assert fbdd.null_prompt_embeds.shape == (1, 77, 32)
    assert build_repo(path, "/nonexistent") == path  # complete: kept


@pytest.mark.parametrize("schedule", ["zero_snr", "sd2"])
def test_mini_repo_schedule_reaches_training_sampling_and_the_export(mini_repo, tmp_path, schedule):
    """zero_snr: x_999 is pure noise and DDIM starts sampling there; sd2 keeps SD2's schedule."""
    from layeringdiff.networks.fbdd import FBDD
    from layeringdiff.networks.sd2 import make_scheduler

    _, vae = mini_repo
    vae.save_pretrained(tmp_path / "vae")
    path = build_repo(tmp_path / schedule, tmp_path / "vae", unet_config=UNET, schedule=schedule)
    fbdd = FBDD.from_sd2_inpainting(path, "foreground", null_prompt_cache=tmp_path)
    fbdd.save_pretrained(tmp_path / "export")
    for model in (fbdd, FBDD.from_pretrained(tmp_path / "export")):
        last = float(model.noise_scheduler.alphas_cumprod[-1])
        ddim = make_scheduler("ddim", dict(model.noise_scheduler.config))
        ddim.set_timesteps(20)
        if schedule == "zero_snr":
            assert last < 1e-6 and int(ddim.timesteps[0]) == 999
        else:  # SD2: 6.8% of the signal's amplitude left at t = 999; leading spacing starts at 951
            assert 0.004 < last < 0.005 and int(ddim.timesteps[0]) == 951


def test_mini_repo_refuses_an_unknown_schedule(tmp_path):
    with pytest.raises(ValueError, match="schedule 'cosine'"):
        build_repo(tmp_path / "repo", tmp_path / "vae", schedule="cosine")


def test_mini_repo_needs_a_vae_export(tmp_path):
    with pytest.raises(FileNotFoundError, match="no VAE export"):
        build_repo(tmp_path / "repo", tmp_path / "missing")


def test_mini_fbdd_configs_differ_from_the_paper_only_in_sizes(tmp_path, compose_config):
    for short in ("fg", "bg"):
        paper = compose_config("train", tmp_path, [f"experiment=fbdd_{short}"], resolve=True)
        mini = compose_config("train", tmp_path, [f"experiment=mini_fbdd_{short}"], resolve=True)
        assert mini.model._target_ == paper.model._target_
        assert set(mini.model) == set(paper.model)
        for key in ("layer", "alpha_init", "val_scheduler", "in_channels", "build_tiny"):
            assert mini.model[key] == paper.model[key], key
    for name in ("fan", "ban"):
        paper = compose_config("train", tmp_path, [f"experiment=hfa_{name}"], resolve=True)
        mini = compose_config("train", tmp_path, [f"experiment=mini_hfa_{name}"], resolve=True)
        for key in ("_target_", "layer", "input_mode", "haar_weight", "haar_levels"):
            assert mini.model[key] == paper.model[key], key
        assert mini.model.net._target_ == paper.model.net._target_


def test_read_metric_and_loss_plot(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train/loss,val/psnr\n0,9,0.5,\n0,19,0.25,\n0,19,,21.5\n")
    assert report.read_metric(csv) == [(9, 0.5), (19, 0.25)]
    assert report.read_metric(csv, "val/psnr") == [(19, 21.5)]
    with pytest.raises(ValueError, match="no values"):
        report.read_metric(csv, "train/kl")
    out = report.loss_plot({"a": csv, "b": csv}, tmp_path / "plot.png")
    assert Image.open(out).size == (640, 220)


def test_sample_figure_places_each_column(tmp_path):
    root = tmp_path / "table4_figure"
    folders = [
        "composite",
        "foreground/ground_truth",
        "foreground/layeringdiff",
        "ground_truth",
        "layeringdiff",
        "germer_inpaint",
    ]
    for i, folder in enumerate(folders):
        for key in ("k0", "k1"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * i, 10 if key == "k0" else 200, 0)).save(
                root / folder / f"{key}.png"
            )
    out = np.asarray(Image.open(report.sample_figure(root, tmp_path / "fig.png", num=4, cell=16)))
    assert out.shape == (18 + 2 * 16, 6 * 16, 3)
    for i in range(len(folders)):
        assert tuple(out[18 + 8, i * 16 + 8]) == (40 * i, 10, 0)  # row k0, column i
        assert tuple(out[18 + 24, i * 16 + 8]) == (40 * i, 200, 0)


def test_stage_times_reads_mini_sh_records(tmp_path):
    (tmp_path / "vae.txt").write_text("wall=12.5 user=20.0 sys=1.5\nload=1.0,2.0,3.0\n")
    assert report.stage_times(tmp_path) == [
        {"stage": "vae", "wall": 12.5, "user": 20.0, "sys": 1.5, "load": "1.0,2.0,3.0"}
    ]
    assert json.loads(report.write_json({"a": 1}, tmp_path / "x.json").read_text()) == {"a": 1}


def test_region_masks_partition_the_pixels_and_shares_add_up_to_the_mad():
    from layeringdiff.mini.regions import region_masks, region_shares

    true = torch.tensor([[[0.0, 0.2, 0.6, 1.0]]])
    est = torch.tensor([[[0.0, 0.3, 0.5, 0.001]]])  # the last pixel: hole by the true alpha
    masks = region_masks(est, true)
    assert masks["copied"].tolist() == [[[1, 0, 0, 0]]]
    assert masks["thin"].tolist() == [[[0, 1, 0, 0]]]
    assert masks["hole"].tolist() == [[[0, 0, 1, 1]]]
    pred, target = torch.tensor([[[0.1, 0.2, 0.4, 1.0]]]), torch.zeros(1, 1, 4)
    shares = region_shares(pred, target, masks)
    assert shares == pytest.approx({"copied": 0.1 / 4, "thin": 0.2 / 4, "hole": 1.4 / 4})
    assert sum(shares.values()) == pytest.approx(float((pred - target).abs().mean()))


def test_region_analysis_projects_the_raw_layeringdiff_row(monkeypatch):
    """The projected row comes from the raw row's layers: with Germer et al. (which nearly satisfy
    Eq. 1 already) standing in for the raw row it stays close to it, and far from the copy rows."""
    from layeringdiff.mini import regions
    from layeringdiff.pipeline.layering import CompositeCopy, GermerLayering

    stand_ins = {"layeringdiff": GermerLayering(), "fbdd_only": CompositeCopy(), "germer_inpaint": CompositeCopy()}
    monkeypatch.setattr(regions, "methods", lambda models: stand_ins)
    rows = regions.analyse("unused", num=2)["methods"]
    raw, projected, copy = rows["layeringdiff"], rows["layeringdiff_projected"], rows["fbdd_only"]
    assert projected["bg_mad"] == pytest.approx(raw["bg_mad"], rel=0.1)
    assert projected["bg_mad"] < 0.8 * copy["bg_mad"]
    for row in rows.values():
        assert row["bg_mad"] == pytest.approx(sum(row[k] for k in regions.REGIONS))
