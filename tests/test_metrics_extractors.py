"""Extractors built tiny and random (same on-disk form as the real ones), loaded through the real code."""

import numpy as np
import pytest
import torch
from PIL import Image

from layeringdiff.weights import MissingWeightsError


@pytest.fixture(scope="module")
def tiny_metrics(tmp_path_factory):
    from layeringdiff.tiny.metrics import build

    return build(tmp_path_factory.mktemp("tiny_metrics"))


def _images(n, seed, size=48, mode="RGB"):
    rng = np.random.default_rng(seed)
    c = 4 if mode == "RGBA" else 3
    return [Image.fromarray(rng.integers(0, 256, (size, size, c), dtype=np.uint8), mode) for _ in range(n)]


def test_inception_features_fid_self_zero(tiny_metrics):
    from layeringdiff.metrics.fid import InceptionFeatures, frechet_distance, image_features

    net = InceptionFeatures(tiny_metrics / "inception.pt")
    a = image_features(_images(40, 0, mode="RGBA"), net, batch_size=16)
    b = image_features(_images(40, 1), net, batch_size=16)
    assert a.shape == (40, 32)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) > 0
    # batching does not change features
    assert np.allclose(image_features(_images(40, 0, mode="RGBA"), net, batch_size=7), a, atol=1e-5)


def test_inception_missing_file_is_one_clear_line(tmp_path):
    from layeringdiff.metrics.fid import InceptionFeatures

    with pytest.raises(MissingWeightsError, match="inception-2015-12-05.pt") as e:
        InceptionFeatures(tmp_path / "inception-2015-12-05.pt")
    assert "\n" not in str(e.value)


def test_clip_embedder_tiny(tiny_metrics):
    from layeringdiff.metrics.clip_score import ClipEmbedder

    clip = ClipEmbedder(pretrained=str(tiny_metrics / "clip"), batch_size=2)
    s = clip.score(_images(3, 2), ["a cat", "a red ball on grass", "glass"])
    assert s.shape == (3,) and bool(((s >= 0) & (s <= 100)).all())
    assert torch.allclose(clip.score(_images(3, 2), ["a cat", "a red ball on grass", "glass"]), s)


def test_lpips_loads_trunk_from_state_dict(tmp_path):
    import torchvision

    from layeringdiff.metrics.lpips_metric import LPIPSMetric

    torch.manual_seed(0)
    state = torchvision.models.alexnet().state_dict()
    torch.save(state, tmp_path / "alexnet.pth")
    m = LPIPSMetric(alexnet_weights=str(tmp_path / "alexnet.pth"))
    assert not m.random_backbone
    assert torch.equal(m.net.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(m.net.net.slice5._modules["10"].weight, state["features.10.weight"])
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    d = m(x, y)
    assert d.shape == (2,) and bool((d > 0).all())
    assert torch.allclose(m(x, x), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    # equals the lpips package's own forward pass (independent reference)
    reference = m.net(x, y, normalize=True).flatten().double() * 100
    assert torch.allclose(d, reference, rtol=1e-4)
    # a region mask: all ones is the plain metric; a region where the images agree scores far lower
    assert torch.allclose(m(x, y, torch.ones(2, 1, 32, 32)), d, rtol=1e-6)
    a, b = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128)
    z = a.clone()
    z[..., 64:] = b[..., 64:]  # right half differs
    left = torch.zeros(2, 1, 128, 128)
    left[..., :32] = 1
    assert bool((m(a, z, left) < 0.1 * m(a, z, 1 - left)).all())
    assert torch.isnan(m(x, y, torch.zeros(2, 1, 32, 32))).all()
    with pytest.raises(MissingWeightsError, match="AlexNet"):
        LPIPSMetric(alexnet_weights=str(tmp_path / "missing.pth"))


def test_image_features_equal_clean_fid_clean_mode(tmp_path):
    # Our pipeline (uint8 -> clean-fid 'clean' float bicubic resize -> float 0..255 -> network) must give
    # exactly what clean-fid's own file pipeline gives, for odd sizes and with the same extractor.
    from cleanfid.fid import get_files_features

    from layeringdiff.metrics.fid import image_features

    class Probe(torch.nn.Module):  # keeps raw input values: any range/resize difference shows up
        def forward(self, x):
            return x.reshape(x.shape[0], -1)[:, ::331].double()

    rng = np.random.default_rng(0)
    files = []
    for i, (h, w) in enumerate([(37, 53), (300, 299), (64, 128)]):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(files[-1])
    ours = image_features(files, Probe(), batch_size=2)
    theirs = get_files_features(
        [str(f) for f in files],
        model=Probe(),
        num_workers=0,
        batch_size=3,
        device=torch.device("cpu"),
        mode="clean",
        verbose=False,
    )
    assert ours.shape == theirs.shape and ours.max() > 1.5  # float 0..255, not 0..1
    np.testing.assert_array_equal(ours, theirs)


def test_clip_embedder_loads_an_openai_torchscript_archive(tmp_path):
    # OpenAI's ViT-L-14.pt (the default metrics.clip.pretrained) is a TorchScript archive in fp16
    # with three extra buffers; open_clip's own file loader refuses TorchScript.
    import json

    import open_clip

    from layeringdiff.metrics.clip_score import ClipEmbedder
    from layeringdiff.tiny.metrics import TINY_CLIP_CFG

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "tiny-openai-test.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(tmp_path / "cfg")
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP_CFG).eval()

    class OpenAIArchive(torch.nn.Module):  # same parameter names as OpenAI's archive
        def __init__(self):
            super().__init__()
            for name, child in model.named_children():
                self.add_module(name, child)
            for name, p in model.named_parameters(recurse=False):
                self.register_parameter(name, p)
            for name, value in (("input_resolution", 32), ("context_length", 77), ("vocab_size", 49408)):
                self.register_buffer(name, torch.tensor(value))

        def forward(self, x):
            return self.logit_scale * x

    archive = tmp_path / "ViT-tiny.pt"
    torch.jit.save(torch.jit.trace(OpenAIArchive().half(), torch.ones(1, dtype=torch.half)), str(archive))
    clip = ClipEmbedder("tiny-openai-test", str(archive))
    texts = ["a cat", "glass"]
    with torch.no_grad():
        expected = model.half().float().encode_text(open_clip.get_tokenizer("tiny-openai-test")(texts))
    assert torch.allclose(clip.embed_texts(texts), expected, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks that an absent device is really asked for")
def test_metric_networks_run_on_the_configured_device(tmp_path):
    from omegaconf import OmegaConf

    from layeringdiff.metrics import extractors

    cfg = OmegaConf.create({"device": "cpu", "metrics": {"build_tiny": True, "tiny_dir": str(tmp_path)}})
    assert extractors.inception(cfg).device == torch.device("cpu")
    assert next(extractors.clip(cfg).model.parameters()).device == torch.device("cpu")
    cfg.device = "cuda"  # not on this machine: the networks must try to go there, not stay on the CPU
    with pytest.raises((RuntimeError, AssertionError)):
        extractors.inception(cfg)
    with pytest.raises((RuntimeError, AssertionError)):
        extractors.clip(cfg)
