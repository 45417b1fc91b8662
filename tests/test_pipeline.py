"""The full pipeline with tiny random-init components of the real classes (SDXL, Grounding DINO,
SAM, ViTMatte, FBDD, HFA, SD2 inpainting) on CPU; classical layering against pymatting."""

import numpy as np
import pytest
import torch

from layeringdiff.compositing import composite_layers
from layeringdiff.pipeline.errors import InputError
from layeringdiff.pipeline.foreground import ForegroundDetermination, ForegroundSpec
from layeringdiff.pipeline.layering import (
    ClassicalLayering,
    LayeringDiffLayering,
    project_to_composite,
    project_to_composite_dense,
)
from layeringdiff.pipeline.pipeline import LayeringDiffPipeline


def tiny_root(tmp_path_factory):
    """Shared by every test module of the session (the builders are idempotent)."""
    return tmp_path_factory.getbasetemp() / "tiny_cache" / "tiny"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from layeringdiff.pipeline.generate import CompositeGenerator
    from layeringdiff.tiny import foreground, layering, sdxl

    root = tiny_root(tmp_path_factory)
    fg_root = foreground.build(root / "foreground")
    paths = {k: root / "layering" / k for k in ("fbdd_foreground", "fbdd_background", "fan", "ban")}
    layering.build(paths)
    return {
        "generator": CompositeGenerator.from_pretrained(str(sdxl.build(root / "sdxl"))),
        "foreground": ForegroundDetermination.from_pretrained(
            str(fg_root / "grounding_dino"),
            str(fg_root / "sam"),
            str(fg_root / "vitmatte"),
            box_threshold=0.0,
        ),
        "layeringdiff": LayeringDiffLayering.from_pretrained(
            **{k: str(v) for k, v in paths.items()}, num_inference_steps=2
        ),
        "root": root,
    }


def scene(size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    bg = torch.rand(3, 1, 1, generator=g) * 0.5 + 0.1 * torch.rand(3, size, size, generator=g)
    fg = torch.rand(3, 1, 1, generator=g) * 0.5 + 0.5
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).sqrt()
    alpha = (1.0 - (r - size / 5) / 6).clamp(0, 1)[None]
    return alpha * fg + (1 - alpha) * bg, alpha


def test_classical_layering_is_germer_et_al_outside_the_hole():
    from pymatting import estimate_foreground_ml

    image, alpha = scene()
    fg, bg = ClassicalLayering(project=False)(image, alpha)
    ref_f, ref_b = estimate_foreground_ml(
        image.permute(1, 2, 0).double().numpy(), alpha[0].double().numpy(), return_background=True
    )
    np.testing.assert_allclose(fg.permute(1, 2, 0).numpy(), np.clip(ref_f, 0, 1), atol=1e-6)
    seen = (alpha[0] <= 0.95).numpy()
    np.testing.assert_allclose(bg.permute(1, 2, 0).numpy()[seen], np.clip(ref_b, 0, 1)[seen], atol=1e-6)
    # the hole (alpha > 0.95) is inpainted from its surroundings, not left as Germer's guess
    hole = alpha[0] > 0.95
    assert hole.any() and not torch.allclose(
        bg[:, hole], torch.from_numpy(ref_b).float().permute(2, 0, 1)[:, hole]
    )


def test_projection_makes_layers_recomposite_exactly():
    g = torch.Generator().manual_seed(1)
    f, b, c = (torch.rand(3, 16, 16, generator=g) for _ in range(3))
    a = torch.rand(1, 16, 16, generator=g)
    a[:, :2], a[:, 2:4] = 0.0, 1.0
    pf, pb = project_to_composite(f, b, a, c)
    assert (a * pf + (1 - a) * pb - c).abs().max() < 1e-5
    assert 0 <= pf.min() and pf.max() <= 1 and 0 <= pb.min() and pb.max() <= 1
    assert torch.equal(pf[:, 2:4], c[:, 2:4]) and torch.equal(pb[:, :2], c[:, :2])
    # already consistent layers are left unchanged
    qf, qb = project_to_composite(f, b, a, a * f + (1 - a) * b)
    assert torch.allclose(qf, f, atol=1e-6) and torch.allclose(qb, b, atol=1e-6)


def test_projection_equals_its_every_pixel_reference():
    """Only pixels with 0 < alpha < 1 go through the general formula; alpha 0 / 1 use its closed form."""
    g = torch.Generator().manual_seed(2)
    f, b, c = (torch.rand(3, 40, 40, generator=g) for _ in range(3))
    a = torch.rand(1, 40, 40, generator=g)
    a[:, :10], a[:, 10:20] = 0.0, 1.0  # a real matte is mostly exact 0 and 1
    a[:, 20:22] = 1e-13  # below the formula's 1e-12 guards
    new, ref = project_to_composite(f, b, a, c), project_to_composite_dense(f, b, a, c)
    assert all(torch.equal(x, y) for x, y in zip(new, ref))  # bit for bit, layers in [0, 1]
    out_of_range = project_to_composite(f * 1.6 - 0.3, b * 1.6 - 0.3, a, c)
    ref = project_to_composite_dense(f * 1.6 - 0.3, b * 1.6 - 0.3, a, c)
    assert all((x - y).abs().max() <= 1e-6 for x, y in zip(out_of_range, ref))  # else to float rounding


def test_classical_layering_reports_its_stages_to_a_clock():
    import contextlib

    seen = []

    @contextlib.contextmanager
    def clock(stage):
        seen.append(stage)
        yield

    image, alpha = scene(32)
    timed = ClassicalLayering()(image, alpha, clock=clock)
    assert seen == ["germer", "inpaint", "projection"]
    assert all(torch.equal(x, y) for x, y in zip(timed, ClassicalLayering()(image, alpha)))


def test_germer_does_not_depend_on_numba_threads():
    from layeringdiff.pipeline.baselines import germer_foreground_background

    image, alpha = scene(48)
    one, default = (
        germer_foreground_background(image, alpha),
        germer_foreground_background(image, alpha, numba_threads=None),
    )
    assert torch.equal(one[0], default[0]) and torch.equal(one[1], default[1])


def test_sd2_inpainting_fills_only_the_hole(tmp_path_factory):
    from layeringdiff.tiny import sd2

    path = sd2.build(tiny_root(tmp_path_factory) / "sd2_inpainting")
    spec = {"kind": "sd2", "weights": str(path), "num_inference_steps": 2}
    layering = ClassicalLayering.from_pretrained(inpainter=spec, project=False)
    image, alpha = scene(32)
    _, bg_cv = ClassicalLayering(project=False)(image, alpha)
    _, bg = layering(image, alpha, torch.Generator().manual_seed(0))
    hole = alpha[0] > 0.95
    assert torch.equal(bg[:, ~hole], bg_cv[:, ~hole]) and not torch.allclose(bg[:, hole], bg_cv[:, hole])


def test_text_to_layers_with_every_tiny_component(tiny):
    pipe = LayeringDiffPipeline(tiny["foreground"], tiny["layeringdiff"], tiny["generator"])
    kwargs = dict(
        prompt="A bird flying at sunset over the mountains",
        foreground_indices=[[0, 1, 2]],
        height=64,
        width=64,
        num_inference_steps=2,
    )
    out = pipe(**kwargs, generator=torch.Generator().manual_seed(0))
    assert out.composite.shape == (3, 64, 64) and out.background.shape == (3, 64, 64)
    assert len(out.foregrounds) == len(out.alphas) == 1 and out.foregrounds[0].shape == (3, 64, 64)
    assert out.foreground_prompts == ["A bird flying"] and out.matting == ["vitmatte"]
    assert {"generate", "foreground_1", "layering_1"} <= set(out.timings)
    again = pipe(**kwargs, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.composite, again.composite) and torch.equal(out.background, again.background)


def test_controlnet_canny_generation(tiny):
    from layeringdiff.pipeline.generate import CompositeGenerator
    from layeringdiff.tiny import sdxl

    root = tiny["root"]
    gen = CompositeGenerator.from_pretrained(
        str(root / "sdxl"), controlnet=str(sdxl.build_controlnet(root / "controlnet")), control="canny"
    )
    control = torch.zeros(3, 48, 48)
    control[:, 10:30, 10:30] = 1
    img = gen(
        "a cat",
        height=32,
        width=32,
        num_inference_steps=2,
        control_image=control,
        generator=torch.Generator().manual_seed(0),
    )
    assert img.shape == (3, 32, 32)
    with pytest.raises(InputError, match="control image"):
        gen("a cat", height=32, width=32, num_inference_steps=1)


def test_multi_layer_peeling_recomposites(tiny):
    image, alpha_outer = scene(96)
    mask_top = torch.zeros(1, 96, 96)
    mask_top[:, 30:66, 30:66] = 1
    alpha_top = torch.zeros(1, 96, 96)
    alpha_top[:, 40:56, 40:56] = 1.0
    alpha_top[:, 38:58, 38:40] = 0.5
    pipe = LayeringDiffPipeline(ForegroundDetermination(), ClassicalLayering())
    out = pipe(image=image, foregrounds=[ForegroundSpec(alpha=alpha_top), ForegroundSpec(alpha=alpha_outer)])
    assert len(out.foregrounds) == 2 and torch.equal(out.alphas[0], alpha_top)
    assert (out.recomposite() - image).abs().max() < 1e-4
    assert torch.allclose(composite_layers(out.background, out.foregrounds, out.alphas), out.recomposite())
    # top-most first: the second layer was separated from what the first left behind
    assert set(out.timings) == {"foreground_1", "layering_1", "foreground_2", "layering_2"}
    # text-mode multi-layer through the tiny models, layeringdiff backend
    pipe = LayeringDiffPipeline(tiny["foreground"], tiny["layeringdiff"], tiny["generator"])
    out = pipe(
        prompt="A bird over the mountains",
        foreground_indices=[[0, 1], [4]],
        height=64,
        width=64,
        num_inference_steps=2,
    )
    assert out.foreground_prompts == ["A bird", "mountains"] and len(out.alphas) == 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(), "either a text prompt"),
        (dict(prompt="a", image=torch.rand(3, 32, 32)), "either a text prompt"),
        (dict(prompt="a"), "SDXL generator"),
        (dict(image=torch.rand(3, 1, 1), foregrounds=[ForegroundSpec(box=[0, 0, 1, 1])]), "1x1"),
        (dict(image=torch.rand(3, 32, 5000), foregrounds=[ForegroundSpec(box=[0, 0, 1, 1])]), "5000x32"),
        (dict(image=torch.rand(3, 32, 32)), "no foreground given"),
    ],
)
def test_check_inputs(kwargs, match):
    pipe = LayeringDiffPipeline(ForegroundDetermination(), ClassicalLayering())
    with pytest.raises(InputError, match=match):
        pipe(**kwargs)


def test_check_inputs_text_mode(tiny):
    pipe = LayeringDiffPipeline(ForegroundDetermination(), ClassicalLayering(), tiny["generator"])
    for kwargs, match in [
        (dict(prompt="a bird", foreground_indices=[[5]]), "out of range"),
        (dict(prompt="a bird", foreground_indices=[[]]), "empty"),
        (dict(prompt="a bird"), "foreground_indices"),
        (dict(prompt="  ", foreground_indices=[[0]]), "empty"),
        (dict(prompt="a bird", foreground_indices=[[0]], height=60), "multiple of 8"),
    ]:
        with pytest.raises(InputError, match=match):
            pipe(**kwargs)


def test_layeringdiff_backend_fbdd_then_hfa(tiny):
    """Tiny FBDD + HFA exports: odd sizes are padded and cropped back, HFA copies the composite
    through where the layer is known, the same seed gives the same layers, projection is exact."""
    layering = tiny["layeringdiff"]
    g = torch.Generator().manual_seed(0)
    image, alpha = torch.rand(3, 36, 44, generator=g), torch.rand(1, 36, 44, generator=g)
    alpha[:, :8], alpha[:, 8:16] = 1.0, 0.0
    fg, bg = layering(image, alpha, torch.Generator().manual_seed(0))
    assert fg.shape == bg.shape == (3, 36, 44)
    assert torch.equal(fg[:, :8], image[:, :8]) and torch.equal(bg[:, 8:16], image[:, 8:16])
    fg2, _ = layering(image, alpha, torch.Generator().manual_seed(0))
    assert torch.equal(fg, fg2)
    layering.project = True
    try:
        pf, pb = layering(image, alpha, torch.Generator().manual_seed(0))
    finally:
        layering.project = False
    assert (alpha * pf + (1 - alpha) * pb - image).abs().max() < 1e-5


def test_peeling_determines_each_foreground_on_the_background_left_by_the_one_above():
    seen = []

    class SpyForeground(ForegroundDetermination):
        def __call__(self, image, spec):
            seen.append(image.clone())
            return super().__call__(image, spec)

    class FakeLayering:
        def __init__(self):
            self.backgrounds = []

        def __call__(self, composite, alpha, generator=None, *, trimap=None):
            bg = composite * 0.5 + 0.1 * len(self.backgrounds)  # any new background
            self.backgrounds.append(bg)
            return composite.clone(), bg

    image, alpha = scene(32)
    layering = FakeLayering()
    pipe = LayeringDiffPipeline(SpyForeground(), layering)
    out = pipe(image=image, foregrounds=[ForegroundSpec(alpha=alpha), ForegroundSpec(alpha=alpha * 0.5)])
    assert torch.equal(seen[0], image) and torch.equal(seen[1], layering.backgrounds[0])
    assert torch.equal(out.background, layering.backgrounds[1]) and torch.equal(out.alphas[1], alpha * 0.5)


def test_layering_member_gets_the_trimap_the_alpha_came_from():
    """The Layering protocol's ``trimap`` (for members such as FBA that need it): the pipeline
    passes the trimap its foreground stage used, and ``None`` for a given alpha."""
    from layeringdiff.pipeline.layering import CompositeCopy, Layering

    class TrimapSpy(CompositeCopy):
        def __init__(self):
            super().__init__()
            self.trimaps = []

        def __call__(self, composite, alpha, generator=None, *, trimap=None):
            self.trimaps.append(trimap)
            return super().__call__(composite, alpha, generator, trimap=trimap)

    image, alpha = scene(32)
    trimap = torch.where(alpha > 0.9, 1.0, torch.where(alpha < 0.1, 0.0, 0.5))
    spy = TrimapSpy()
    assert isinstance(spy, Layering)
    pipe = LayeringDiffPipeline(ForegroundDetermination(), spy)
    out = pipe(image=image, foregrounds=[ForegroundSpec(trimap=trimap), ForegroundSpec(alpha=alpha)])
    assert spy.trimaps[1] is None and spy.trimaps[0] is not None
    assert torch.equal(spy.trimaps[0], out.trimaps[0]) and torch.equal(out.trimaps[0].float(), trimap)
    assert torch.equal(out.foregrounds[0], image) and torch.equal(out.background, image)  # copy: F = B = C


def test_tiny_hfa_build_interrupted_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    from layeringdiff.networks.hfa import HFANet
    from layeringdiff.tiny.layering import build_hfa

    def killed(self, folder, **kwargs):  # the config is written, then the process dies
        self.save_config(folder)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(HFANet, "save_pretrained", killed)
        with pytest.raises(KeyboardInterrupt):
            build_hfa(tmp_path / "ban", "background")
    assert list(tmp_path.iterdir()) == []
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    net = HFANet.from_pretrained(build_hfa(tmp_path / "ban", "background"))
    assert torch.equal(torch.rand(1), expected)  # the caller's RNG is left alone
    assert net.config.layer == "background"


def test_tiny_builders_leave_the_callers_rng_alone(tmp_path):
    from layeringdiff.tiny import foreground, sdxl

    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    sdxl.build_controlnet(tmp_path / "controlnet")
    foreground.build_vitmatte(tmp_path / "vitmatte")
    assert torch.equal(torch.rand(2), expected)
