"""Our closed-form matting (layeringdiff.pipeline.closed_form) against pymatting, the independent reference.

What each test catches:
* the Laplacian rows against pymatting's ``cf_laplacian``: a dropped or extra window, a wrong
  epsilon or window normalisation, a misplaced stencil entry or right-hand side;
* the solver against scipy's sparse LU on the same matrix: a wrong front, extend-add or elimination
  order (deep and shallow trees, several independent regions, pixels on the image border);
* the nested dissection: a separator that lets two sibling regions touch (the solver would then drop
  fill), a pixel lost or eliminated twice, a parent before its child;
* the alpha against ``estimate_alpha_cf`` (its default CG tolerance, a tight one, and the exact
  solution of pymatting's own system): anything above;
* ``closed_form_matting``: the solver option, and that the default path loads neither pymatting nor numba;
* ``one_blas_thread``: that it sets and restores OpenBLAS's thread count (else the solver's CPU time
  explodes on a loaded machine).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

from layeringdiff.pipeline.closed_form import (
    STENCIL,
    StencilCholesky,
    closed_form_alpha,
    nested_dissection,
    split_trimap,
    unknown_laplacian,
)

ROOT = Path(__file__).resolve().parents[1]


def textured_scene(h=40, w=48, seed=0):
    """A noisy two-colour image with a soft blob alpha and a trimap whose unknown band reaches the border."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h * 0.45, xx - w * 0.3)
    alpha = np.clip(1.0 - (r - h * 0.3) / 5.0, 0, 1)
    fg, bg = np.array([0.9, 0.3, 0.1]), np.array([0.1, 0.4, 0.8])
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg + 0.05 * rng.standard_normal((h, w, 3))
    image = np.clip(image, 0, 1)
    trimap = np.full((h, w), 0.5)
    trimap[r < h * 0.3 - 4] = 1.0
    trimap[r > h * 0.3 + 9] = 0.0
    trimap[:, -6:] = 0.0  # a second definite region; the unknown band still touches the top/left border
    return image, trimap


def stencil_csr(values, neighbours):
    """The stencil matrix as scipy CSR (rows: unknown pixels)."""
    n = values.shape[1]
    rows = np.broadcast_to(np.arange(n), values.shape)
    keep = neighbours >= 0
    return scipy.sparse.csr_matrix((values[keep], (rows[keep], neighbours[keep])), shape=(n, n))


def test_laplacian_rows_match_pymatting():
    from pymatting import cf_laplacian

    image, trimap = textured_scene()
    h, w = trimap.shape
    fg, _, unknown = split_trimap(trimap)
    unknown_out, values, neighbours, rhs = unknown_laplacian(image, trimap)
    assert np.array_equal(unknown_out, unknown)
    ref = cf_laplacian(image, epsilon=1e-7, radius=1, is_known=~unknown).toarray()
    ys, xs = np.divmod(np.flatnonzero(unknown), w)
    mine = np.zeros((len(ys), h * w))
    for s, (dy, dx) in enumerate(STENCIL):
        yj, xj = ys + dy, xs + dx
        inside = (yj >= 0) & (yj < h) & (xj >= 0) & (xj < w)
        mine[np.flatnonzero(inside), (yj * w + xj)[inside]] = values[s, inside]
        # the neighbour numbers: unknown pixels only
        expect = np.full(len(ys), -1)
        number = np.full(h * w, -1)
        number[unknown.ravel()] = np.arange(len(ys))
        expect[inside] = number[(yj * w + xj)[inside]]
        assert np.array_equal(neighbours[s], expect)
    rows = ref[unknown.ravel()]
    scale = np.abs(rows).max()  # same arithmetic in the same order as pymatting: equal to rounding
    np.testing.assert_allclose(mine, rows, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(rhs, -rows[:, fg.ravel()].sum(1), rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("leaf_size", [1, 5, 40, 10_000])
def test_solver_matches_a_sparse_lu(leaf_size):
    image, trimap = textured_scene(seed=1)
    trimap[10:14, 30:34] = 0.5  # an unknown island apart from the band: an independent root
    unknown, values, neighbours, rhs = unknown_laplacian(image, trimap)
    ys, xs = np.divmod(np.flatnonzero(unknown), trimap.shape[1])
    x = StencilCholesky(values, neighbours, ys, xs, leaf_size).solve(rhs)
    ref = scipy.sparse.linalg.spsolve(stencil_csr(values, neighbours).tocsc(), rhs)
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-8)


def test_nested_dissection_is_a_valid_elimination_tree():
    rng = np.random.default_rng(2)
    pixels = np.flatnonzero(rng.random(50 * 60) < 0.4)  # scattered pixels: many independent parts
    ys, xs = np.divmod(pixels, 60)
    nodes = nested_dissection(ys, xs, leaf_size=6)
    owner = np.full(len(ys), -1)
    parent = np.full(len(nodes), -1)
    for k, (elim, children) in enumerate(nodes):
        assert (owner[elim] == -1).all()  # each pixel eliminated once
        owner[elim] = k
        for c in children:
            assert c < k and parent[c] == -1  # postorder, one parent
            parent[c] = k
    assert (owner >= 0).all()

    def ancestors(k):
        out = set()
        while k >= 0:
            out.add(k)
            k = parent[k]
        return out

    chains = [ancestors(k) for k in range(len(nodes))]
    near = np.abs(ys[:, None] - ys[None, :]) <= 2
    near &= np.abs(xs[:, None] - xs[None, :]) <= 2
    for i, j in zip(*np.nonzero(np.triu(near, 1))):
        a, b = owner[i], owner[j]
        assert a in chains[b] or b in chains[a], (i, j)  # coupled pixels: one node above the other


def test_alpha_matches_pymatting_estimate_alpha_cf():
    from pymatting import estimate_alpha_cf

    image, trimap = textured_scene(64, 72, seed=3)
    ours = closed_form_alpha(image, trimap)
    default = estimate_alpha_cf(image, trimap)  # CG to a relative residual of 1e-7
    tight = estimate_alpha_cf(image, trimap, cg_kwargs={"rtol": 1e-13, "maxiter": 100_000})
    assert np.abs(ours - default).max() < 1e-3
    assert np.abs(ours - tight).max() < 1e-6  # the same linear system, solved exactly
    assert ((trimap > 0.1) & (trimap < 0.9) & (ours > 0.02) & (ours < 0.98)).any()  # a real matte


def test_alpha_of_the_bundled_photo_matches_pymatting():
    """The benchmark's case (the sample photo and its rough mask), at 160 px.

    pymatting stops its conjugate gradients at a relative residual of 1e-7 (4.4e-5 from the exact
    solution of its own system here, 2.2e-4 at 768 px); our direct solve matches that exact solution.
    """
    from PIL import Image
    from pymatting import cf_laplacian, estimate_alpha_cf

    from layeringdiff.images import pil_to_tensor
    from layeringdiff.pipeline.foreground import ForegroundDetermination

    photo = Image.open(ROOT / "data/samples/astronaut.png").convert("RGB").resize((160, 160), Image.BICUBIC)
    mask = Image.open(ROOT / "data/samples/astronaut_mask.png").resize((160, 160), Image.NEAREST)
    image = pil_to_tensor(photo)
    trimap, _ = ForegroundDetermination().trimap_from_mask(image, (pil_to_tensor(mask) > 0.5).float())
    img, tri = image.permute(1, 2, 0).double().numpy(), trimap[0].double().numpy()
    ours = closed_form_alpha(img, tri)
    assert np.abs(ours - estimate_alpha_cf(img, tri)).max() < 1e-3
    fg, _, unknown = (m.ravel() for m in split_trimap(tri))
    laplacian = cf_laplacian(img, is_known=~unknown.reshape(tri.shape)).tocsr()
    exact = tri.ravel().copy()
    exact[unknown] = scipy.sparse.linalg.spsolve(
        laplacian[unknown][:, unknown].tocsc(), -laplacian[unknown][:, fg].sum(1).A1
    )
    assert np.abs(ours.ravel() - np.clip(exact, 0, 1)).max() < 1e-7


def test_closed_form_matting_solvers_agree_and_the_default_needs_no_pymatting():
    from layeringdiff.pipeline.foreground import closed_form_matting

    image, trimap = textured_scene(seed=4)
    img = torch.from_numpy(image).permute(2, 0, 1).float()
    tri = torch.from_numpy(trimap).float()[None]
    direct = closed_form_matting(img, tri)
    assert direct.shape == (1, *trimap.shape) and direct.dtype == torch.float32
    assert (direct - closed_form_matting(img, tri, solver="pymatting")).abs().max() < 1e-3
    with pytest.raises(ValueError, match="solver must be one of direct, pymatting"):
        closed_form_matting(img, tri, solver="cg")
    code = (
        "import sys, torch\n"
        "from layeringdiff.pipeline.foreground import closed_form_matting\n"
        "tri = torch.full((1, 12, 12), 0.5); tri[:, :3] = 1.0; tri[:, -3:] = 0.0\n"
        "closed_form_matting(torch.rand(3, 12, 12), tri)\n"
        "print(sorted(m for m in ('pymatting', 'numba') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_one_blas_thread_sets_and_restores_openblas_threads():
    """Without it, the solver's thousands of small LAPACK calls spin a second OpenBLAS thread:
    30x the CPU time on a loaded 2-core machine when OMP_NUM_THREADS is not set."""
    from layeringdiff.blas_threads import _loaded_openblas_paths, _setters, one_blas_thread

    setters = _setters(tuple(_loaded_openblas_paths()))
    if not setters:
        pytest.skip("no OpenBLAS with openblas_set_num_threads_local in this process")
    before = [setter(3) for setter in setters]
    try:
        with one_blas_thread():
            assert [setter(1) for setter in setters] == [1] * len(setters)
        assert [setter(3) for setter in setters] == [3] * len(setters)  # restored
    finally:
        for setter, count in zip(setters, before):
            setter(count)
