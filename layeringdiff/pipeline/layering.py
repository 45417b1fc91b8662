"""Stage 3, layering: composite + alpha -> foreground and background colour layers.

Every layering method is a :class:`Layering`: ``layering(composite, alpha, generator, trimap=None)
-> (F, B)`` on one image, (3, H, W) / (1, H, W) float tensors in [0, 1], returning (3, H, W)
float32 layers on the CPU. The members of the ``configs/layering/`` group:

* ``classical`` -- :class:`ClassicalLayering`: Germer et al. F and B, B inpainted where
  alpha > 0.95 (a ``configs/inpainter/`` member: OpenCV FSR by default, Telea, or SD2
  inpainting; :mod:`layeringdiff.pipeline.inpainters`), projected to re-composite exactly;
* ``germer_inpaint`` -- the same without the projection (the paper's Table 4 baseline);
* ``germer`` -- :class:`GermerLayering`: Germer et al. F and B, nothing inpainted;
* ``copy`` -- :class:`CompositeCopy`: F = B = the composite, the floor every method must beat;
* ``layeringdiff`` -- :class:`LayeringDiffLayering`: the paper's FBDD (two latent-diffusion
  UNets) then HFA (FAN / BAN with exact copy-through), loaded from their exported folders;
* ``fba`` / ``fba_inpaint`` -- :class:`layeringdiff.pipeline.fba_layering.FBALayering`: FBA
  Matting's own F and B from image + trimap (its B inpainted where alpha > 0.95 for the latter).

``trimap`` (1, H, W) is the trimap the alpha came from when there is one (``None`` when the
alpha was given); the members in this module ignore it. A member that needs the trimap or the
image itself (FBA Matting, which predicts F, B and alpha from image + trimap) reads it there.
Every member is built by Hydra through ``from_pretrained(device=, dtype=, offload=, **config)``
and has a ``name`` (the member name, recorded in ``meta.json`` and used as the Table 4 row).
"""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from layeringdiff.pipeline.baselines import germer_foreground_background
from layeringdiff.pipeline.inpainters import TeleaInpainter, build_inpainter
from layeringdiff.pipeline.offload import on_device, placement
from layeringdiff.weights import resolve_pretrained


@runtime_checkable
class Layering(Protocol):
    """composite (3, H, W) + alpha (1, H, W) [+ trimap] -> (F, B), each (3, H, W) in [0, 1]."""

    name: str

    def __call__(
        self,
        composite: torch.Tensor,
        alpha: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        trimap: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def set_progress_bar(self, enabled: bool) -> None: ...


class _Stateless:
    """A member with no weights: nothing to load, no progress bar, runs on the CPU."""

    name = "stateless"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).name

    @classmethod
    def from_pretrained(cls, device=None, dtype=None, offload: bool = False, **kwargs):
        return cls(**kwargs)

    def set_progress_bar(self, enabled: bool) -> None:
        pass


class GermerLayering(_Stateless):
    """Germer et al. multi-level estimation of F and B alone (no inpainting): the paper's baseline row."""

    name = "germer"

    def __call__(self, composite, alpha, generator=None, *, trimap=None):
        return germer_foreground_background(composite, alpha)


class CompositeCopy(_Stateless):
    """The trivial floor: both layers are the composite itself (a sanity row, and for tests)."""

    name = "copy"

    def __call__(self, composite, alpha, generator=None, *, trimap=None):
        composite = composite.float().cpu()
        return composite.clone(), composite.clone()


def _project(
    foreground: torch.Tensor, background: torch.Tensor, a: torch.Tensor, composite: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`project_to_composite` element by element (``a`` the alpha of each element)."""
    residual = composite - (a * foreground + (1.0 - a) * background)
    norm = a**2 + (1.0 - a) ** 2
    fg = foreground + a * residual / norm
    bg = background + (1.0 - a) * residual / norm
    inf = torch.full_like(fg, float("inf"))
    one_minus = 1.0 - a
    has_f, has_b = one_minus > 1e-12, a > 1e-12
    safe_f, safe_b = torch.where(has_f, one_minus, 1.0), torch.where(has_b, a, 1.0)
    lo = torch.maximum(torch.where(has_f, -fg / safe_f, -inf), torch.where(has_b, (bg - 1.0) / safe_b, -inf))
    hi = torch.minimum(torch.where(has_f, (1.0 - fg) / safe_f, inf), torch.where(has_b, bg / safe_b, inf))
    t = torch.clamp(torch.zeros_like(fg), lo, torch.maximum(lo, hi))
    fg = (fg + t * one_minus).clamp(0, 1)
    bg = (bg - t * a).clamp(0, 1)
    return fg, bg


def project_to_composite_dense(
    foreground: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor, composite: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`project_to_composite` evaluated at every pixel: its reference (tests, benchmark)."""
    return _project(foreground, background, alpha.expand_as(composite), composite)


def project_to_composite(
    foreground: torch.Tensor, background: torch.Tensor, alpha: torch.Tensor, composite: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closest (F, B) in [0, 1] to the given layers with a*F + (1-a)*B equal to the composite (Eq. 1).

    Per pixel and channel this is a 2-D least-squares problem on a line: the unconstrained
    solution is F* = F + a r / n, B* = B + (1 - a) r / n with r = C - (a F + (1 - a) B) and
    n = a^2 + (1 - a)^2; moving along the line, F = F* + t (1 - a), B = B* - t a, the [0, 1]
    bounds give an interval of t that contains a feasible point (F = B = C is one), and the
    closest point takes t = 0 clipped to that interval. Where a == 1, F = C; where a == 0, B = C.

    Where a is exactly 0 or 1 (most pixels) the answer is that closed form, F + (C - F) or
    B + (C - B) and the other layer clipped, the same arithmetic as the general formula there for
    layers in [0, 1]; the general formula runs only on the other pixels.
    """
    if alpha.dim() != 3 or alpha.shape[0] != 1 or composite.dim() != 3:
        return project_to_composite_dense(foreground, background, alpha, composite)
    # numpy: these few element-wise passes would cost more CPU time in torch's thread pool
    f, b, c = (
        x.detach().float().cpu().numpy().reshape(len(composite), -1)
        for x in (foreground, background, composite)
    )
    a = alpha.detach().float().cpu().numpy().reshape(-1)
    opaque, clear = a == 1, a == 0
    fg = np.where(opaque, f + (c - f), f)
    bg = np.where(clear, b + (c - b), b)
    np.clip(fg, 0, 1, out=fg)
    np.clip(bg, 0, 1, out=bg)
    mixed = np.flatnonzero(~(opaque | clear))
    if len(mixed):
        pf, pb = _project(*(torch.from_numpy(x) for x in (f[:, mixed], b[:, mixed], a[mixed], c[:, mixed])))
        fg[:, mixed], bg[:, mixed] = pf.numpy(), pb.numpy()
    shape = composite.shape
    return torch.from_numpy(fg).reshape(shape), torch.from_numpy(bg).reshape(shape)


class ClassicalLayering:
    """Germer et al. multi-level F/B estimation; the hidden background is inpainted.

    Args:
        name: the member name (``classical``, ``germer_inpaint``).
        inpainter: ``inpainter(image, hole, generator) -> image`` (:mod:`layeringdiff.pipeline.inpainters`);
            ``None`` uses OpenCV Telea (radius 5).
        hole_threshold: background pixels with alpha above this are inpainted (0.95, ours).
        project: make the layers re-composite to the input exactly (:func:`project_to_composite`).
    """

    name = "classical"

    def __init__(
        self,
        inpainter=None,
        hole_threshold: float = 0.95,
        project: bool = True,
        name: str = "classical",
    ):
        self.name = name
        self.inpainter = inpainter if inpainter is not None else TeleaInpainter()
        self.hole_threshold, self.project = hole_threshold, project

    @classmethod
    def from_pretrained(
        cls,
        inpainter=None,
        device="cpu",
        dtype=torch.float32,
        offload: bool = False,
        **kwargs,
    ) -> ClassicalLayering:
        """``inpainter``: a ``configs/inpainter/`` node (:func:`~layeringdiff.pipeline.inpainters.build_inpainter`).

        ``dtype`` is not used: pymatting runs in float64 on the CPU and SD2 inpainting in
        float32 on ``device``; ``offload`` is not supported (ignored).
        """
        return cls(inpainter=build_inpainter(inpainter, device), **kwargs)

    def set_progress_bar(self, enabled: bool) -> None:
        pass

    def __call__(self, composite, alpha, generator=None, *, trimap=None, clock=None):  # types: see Layering
        """``clock(stage)``, when given, is a context manager around each stage (``germer``,
        ``inpaint``, ``projection``): ``experiments/bench_infer.py`` times the stages with it."""
        clock = clock or (lambda stage: contextlib.nullcontext())
        with clock("germer"):
            fg, bg = germer_foreground_background(composite, alpha)
        with clock("inpaint"):
            bg = self.inpainter(bg, alpha.cpu() > self.hole_threshold, generator)
        if self.project:
            with clock("projection"):
                fg, bg = project_to_composite(fg, bg, alpha.cpu().float(), composite.cpu().float())
        return fg, bg


class LayeringDiffLayering:
    """FBDD (foreground and background UNets) then HFA (FAN and BAN), from exported folders.

    Args:
        fbdd_foreground, fbdd_background: ``layeringdiff.networks.fbdd.FBDD`` instances.
        fan, ban: ``layeringdiff.networks.hfa.HFANet`` instances (``None`` skips HFA for that layer; the
            composite is still copied where the layer is visible, F := C at alpha == 1, B := C at alpha == 0).
        num_inference_steps: FBDD sampling steps (the paper gives none; ``fbdd.num_inference_steps``
            of the configs, shared with the HFA training cache).
        multiple: inputs are reflect-padded to a multiple of this; ``None`` = the FBDD models'
            ``size_multiple`` (VAE factor x UNet downsampling).
        scheduler: FBDD sampler (``None`` = DDIM, or "ddim" | "dpmsolver++" | "ddpm" | "euler").
        project: make the layers re-composite to the input exactly (off: the paper's raw output).
        device: where the networks run; offload: keep them in CPU memory between uses.
    """

    name = "layeringdiff"

    def __init__(
        self,
        fbdd_foreground,
        fbdd_background,
        fan=None,
        ban=None,
        num_inference_steps: int = 25,
        multiple: int | None = None,
        scheduler: str | None = None,
        project: bool = False,
        device: str | torch.device = "cpu",
        offload: bool = False,
        name: str = "layeringdiff",
    ):
        self.name = name
        if multiple is None:
            multiple = max(getattr(m, "size_multiple", 64) for m in (fbdd_foreground, fbdd_background))
        self.scheduler = scheduler
        self.fbdd_foreground, self.fbdd_background, self.fan, self.ban = (
            fbdd_foreground,
            fbdd_background,
            fan,
            ban,
        )
        self.num_inference_steps, self.multiple, self.project = num_inference_steps, multiple, project
        self.device, self.offload = torch.device(device), offload
        self.progress = False

    def set_progress_bar(self, enabled: bool) -> None:
        """Show a progress bar over each FBDD model's sampler steps."""
        self.progress = enabled

    @classmethod
    def from_pretrained(
        cls,
        fbdd_foreground: str,
        fbdd_background: str,
        fan: str | None = None,
        ban: str | None = None,
        device="cpu",
        dtype=torch.float32,
        offload: bool = False,
        **kwargs,
    ) -> LayeringDiffLayering:
        """Load the exported FBDD / HFA folders (``save_pretrained`` layout)."""
        from layeringdiff.networks.fbdd import FBDD

        paths = {
            "FBDD foreground": fbdd_foreground,
            "FBDD background": fbdd_background,
            "HFA FAN": fan,
            "HFA BAN": ban,
        }
        resolved = {k: resolve_pretrained(v, k, required=()) if v else None for k, v in paths.items()}
        place = placement(device, offload)

        def load_hfa(path):
            if path is None:
                return None
            from layeringdiff.networks.hfa import HFANet

            return HFANet.from_pretrained(path, dtype=dtype).to(device=place).eval()

        return cls(
            FBDD.from_pretrained(resolved["FBDD foreground"]).to(device=place, dtype=dtype).eval(),
            FBDD.from_pretrained(resolved["FBDD background"]).to(device=place, dtype=dtype).eval(),
            load_hfa(resolved["HFA FAN"]),
            load_hfa(resolved["HFA BAN"]),
            device=device,
            offload=offload,
            **kwargs,
        )

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if not ph and not pw:
            return x
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    @torch.no_grad()
    def __call__(self, composite, alpha, generator=None, *, trimap=None):  # types: see Layering
        from layeringdiff.networks.hfa import copy_through, refine

        h, w = composite.shape[-2:]
        c = self._pad(composite[None].float()).to(self.device)
        a = self._pad(alpha[None].float()).to(self.device)
        layers = {}
        for layer, fbdd, hfa in (
            ("foreground", self.fbdd_foreground, self.fan),
            ("background", self.fbdd_background, self.ban),
        ):
            dtype = next(fbdd.parameters()).dtype
            with on_device(fbdd, self.device, self.offload):
                coarse = fbdd.decompose(
                    c.to(dtype), a.to(dtype), num_inference_steps=self.num_inference_steps,
                    generator=generator, scheduler=self.scheduler, progress=self.progress,
                ).float()  # fmt: skip
            with on_device(hfa, self.device, self.offload):
                if hfa is not None:
                    layers[layer] = refine(hfa, c, a, coarse, layer=layer)
                else:  # without HFA the visible pixels are still known exactly: F := C / B := C
                    layers[layer] = copy_through(coarse, c, a, layer)
        fg = layers["foreground"][0, :, :h, :w].float().cpu().clamp(0, 1)
        bg = layers["background"][0, :, :h, :w].float().cpu().clamp(0, 1)
        if self.project:
            fg, bg = project_to_composite(fg, bg, alpha.cpu().float(), composite.cpu().float())
        return fg, bg
