"""Closed-form matting (Levin et al., "A Closed-Form Solution to Natural Image Matting", 2008).

The alpha minimises a^T L a with the trimap's definite pixels fixed, L being the matting
Laplacian of 3x3 windows with regularisation ``epsilon`` (1e-7, as pymatting's ``cf_laplacian``):

    L_ij = sum over windows k holding i and j of
           delta_ij - (1 + (I_i - mu_k)^T (Sigma_k + epsilon/9 I)^-1 (I_j - mu_k)) / 9

(window centres at least one pixel inside the image, as pymatting). The unknown pixels U solve
L_UU a_U = -L_UK a_K. Only windows holding an unknown pixel enter that system, so the Laplacian is
built for those windows alone, as a 5x5 stencil per unknown pixel (vectorised numpy), and L_UU is
factorised exactly: nested dissection of the unknown pixels by their image coordinates (2-pixel
separators: the stencil reaches 2 pixels) and a multifrontal Cholesky on dense fronts (LAPACK).

The Laplacian's entries are pymatting's arithmetic in pymatting's order, so they equal its
``cf_laplacian`` to rounding, and the alpha equals the exact solution of pymatting's own system to
~1e-8; pymatting's ``estimate_alpha_cf`` stops its conjugate gradients at a relative residual of
1e-7, up to ~2e-4 from that solution on the 768 px benchmark (``tests/test_closed_form.py``,
experiments/RESULTS.md). This takes a third to a half of pymatting's CPU time and needs neither numba
nor pymatting.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas, lapack

from layeringdiff.blas_threads import one_blas_thread

EPSILON = 1e-7  # pymatting's cf_laplacian default
FG_THRESHOLD, BG_THRESHOLD = 0.9, 0.1  # pymatting's trimap_split: >= 0.9 foreground, <= 0.1 background
LEAF_SIZE = 96  # unknowns a nested-dissection leaf eliminates in one front (speed only, not results)

# The 3x3 window's offsets (row-major) and the 5x5 stencil's: offset (dy, dx) of the stencil is
# index (dy + 2) * 5 + (dx + 2); index 12 is the pixel itself.
WINDOW = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
STENCIL = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]


def split_trimap(trimap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(foreground, background, unknown) boolean masks, with pymatting's thresholds."""
    fg, bg = trimap >= FG_THRESHOLD, trimap <= BG_THRESHOLD
    return fg, bg, ~(fg | bg)


def unknown_laplacian(
    image: np.ndarray, trimap: np.ndarray, epsilon: float = EPSILON
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows of the matting Laplacian at the unknown pixels, as a 5x5 stencil.

    Args:
        image: (H, W, 3) float64 in [0, 1].
        trimap: (H, W) float64; see :func:`split_trimap`.

    Returns:
        ``unknown`` (H, W) bool, ``values`` (25, N) float64 (``values[s, u]`` = L_ij for the
        u-th unknown pixel i, in row-major order, and j = i + STENCIL[s]),
        ``neighbours`` (25, N) int64 (the unknown number of j, or -1 where j is known or outside
        the image), and ``rhs`` (N,) = -L_UK a_K (a_K = 1 on the foreground, 0 on the background).
    """
    h, w = trimap.shape
    fg, _, unknown = split_trimap(trimap)
    n = int(unknown.sum())
    ys, xs = np.divmod(np.flatnonzero(unknown), w)

    # Window centres (>= 1 px inside the image) whose 3x3 window holds an unknown pixel.
    touched = np.zeros((h, w), bool)
    for dy, dx in WINDOW:
        touched[1 : h - 1, 1 : w - 1] |= unknown[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
    centre = np.flatnonzero(touched)
    k = len(centre)
    channels = [np.ascontiguousarray(image[..., c]).ravel() for c in range(3)]

    # Centred window colours, regularised covariance and its inverse: pymatting's expressions in
    # pymatting's order (epsilon added first, division by 9 last), so the rounding is the same.
    colour = [[ch[centre + dy * w + dx] for ch in channels] for dy, dx in WINDOW]
    mean = [sum(colour[p][c] for p in range(9)) / 9.0 for c in range(3)]
    for p in range(9):
        for c in range(3):
            colour[p][c] -= mean[c]

    def cov(a: int, b: int) -> np.ndarray:
        s = epsilon if a == b else 0.0
        for p in range(9):
            s = s + colour[p][a] * colour[p][b]
        return s / 9.0

    a00, a01, a02, a11, a12, a22 = cov(0, 0), cov(0, 1), cov(0, 2), cov(1, 1), cov(1, 2), cov(2, 2)
    inv_det = 1.0 / (
        a00 * a12 * a12 + a01 * a01 * a22 + a02 * a02 * a11 - a00 * a11 * a22 - 2 * a01 * a02 * a12
    )
    m00, m11, m22 = (
        (a12 * a12 - a11 * a22) * inv_det,
        (a02 * a02 - a00 * a22) * inv_det,
        (a01 * a01 - a00 * a11) * inv_det,
    )
    m01, m02, m12 = (
        (a01 * a22 - a02 * a12) * inv_det,
        (a02 * a11 - a01 * a12) * inv_det,
        (a00 * a12 - a01 * a02) * inv_det,
    )
    del a00, a01, a02, a11, a12, a22, inv_det, mean
    weighted = []
    for p in range(9):
        s, t, u = colour[p]
        weighted.append(
            (m00 * s + m01 * t + m02 * u, m01 * s + m11 * t + m12 * u, m02 * s + m12 * t + m22 * u)
        )

    # L_ij sums, over the windows holding i at window offset p and j at q, the window's entry
    # (p, q). For each unknown pixel, the window with i at offset p is centred at i - WINDOW[p];
    # windows not built (centre on the image border) read index k, an appended 0.
    window_at = np.full((h + 2, w + 2), k, np.int64)  # padded by 1: i - WINDOW[p] may leave the image
    cy, cx = np.divmod(centre, w)
    window_at[cy + 1, cx + 1] = np.arange(k)
    flat = window_at.ravel()
    base = (ys + 1) * (w + 2) + xs + 1
    holding = [flat[base - dy * (w + 2) - dx] for dy, dx in WINDOW]  # (9) x (n,)
    values = np.zeros((25, n))
    entry = np.empty(k + 1)
    entry[k] = 0.0
    for p, (py, px) in enumerate(WINDOW):
        for q in range(p, 9):
            qy, qx = WINDOW[q]
            wp, cq = weighted[p], colour[q]
            entry[:k] = wp[0] * cq[0]
            entry[:k] += wp[1] * cq[1]
            entry[:k] += wp[2] * cq[2]
            entry[:k] += 1.0
            entry[:k] /= -9.0
            if p == q:
                entry[:k] += 1.0
            values[(qy - py + 2) * 5 + (qx - px + 2)] += entry[holding[p]]
            if p != q:
                values[(py - qy + 2) * 5 + (px - qx + 2)] += entry[holding[q]]

    # Neighbour numbers and the right-hand side, through images padded by 2 (the stencil's reach).
    number = np.full((h + 4, w + 4), -1, np.int64)
    number[2:-2, 2:-2][unknown] = np.arange(n)
    is_fg = np.zeros((h + 4, w + 4))
    is_fg[2:-2, 2:-2] = fg
    number, is_fg = number.ravel(), is_fg.ravel()
    base = (ys + 2) * (w + 4) + xs + 2
    neighbours = np.empty((25, n), np.int64)
    rhs = np.zeros(n)
    for s, (dy, dx) in enumerate(STENCIL):
        j = base + dy * (w + 4) + dx
        neighbours[s] = number[j]
        rhs -= values[s] * is_fg[j]
    return unknown, values, neighbours, rhs


def nested_dissection(
    ys: np.ndarray, xs: np.ndarray, leaf_size: int = LEAF_SIZE
) -> list[tuple[np.ndarray, list[int]]]:
    """Elimination tree of pixels at (ys, xs) coupled within 2 pixels (a 5x5 stencil).

    A region is cut by two adjacent rows or columns (the separator: no pixel on one side is
    within 2 pixels of one on the other); the cut is the smallest separator leaving 25-75% of the
    pixels on each side. Returns the nodes in postorder, each (pixels it eliminates, child nodes).
    """
    nodes: list[tuple[np.ndarray, list[int]]] = []

    def best_cut(coord: np.ndarray, lo: int) -> tuple[int, int]:
        """(cut m, separator size) of the best cut along ``coord`` (size n + 1 when none)."""
        n = len(coord)
        counts = np.bincount(coord - lo)
        if len(counts) < 4:
            return -1, n + 1
        cum = np.cumsum(counts)  # cum[b]: pixels at local coordinate <= b
        left = np.concatenate([[0], cum[:-2]])  # cutting rows b, b + 1 leaves these below b...
        right = n - cum[1:]  # ...and these above b + 1
        quarter = n // 4
        score = np.where((left >= quarter) & (right >= quarter), counts[:-1] + counts[1:], n + 1)
        best = int(score.argmin())
        return lo + best, int(score[best])

    def dissect(idx: np.ndarray) -> list[int]:
        """Nodes for the pixels ``idx`` (ascending, so their rows ascend); returns the roots."""
        if len(idx) <= leaf_size:
            nodes.append((idx, []))
            return [len(nodes) - 1]
        y, x = ys[idx], xs[idx]
        my, sy = best_cut(y, int(y[0]))
        mx, sx = best_cut(x, int(x.min()))
        if min(sy, sx) > len(idx):
            nodes.append((idx, []))
            return [len(nodes) - 1]
        if sy <= sx:  # rows my, my + 1: slices, as the rows ascend
            a, b = np.searchsorted(y, [my, my + 2])
            below, sep, above = idx[:a], idx[a:b], idx[b:]
        else:
            below, sep, above = idx[x < mx], idx[(x == mx) | (x == mx + 1)], idx[x > mx + 1]
        children = dissect(below) + dissect(above)
        if len(sep) == 0:
            return children
        nodes.append((sep, children))
        return [len(nodes) - 1]

    dissect(np.arange(len(ys)))
    return nodes


class NotPositiveDefinite(ValueError):
    """A front's Cholesky factorisation failed: the system is singular (for the matting system:
    an image under 3 pixels on a side, which has no window; every unknown region of a larger image
    shares a window with a definite pixel, so L_UU is positive definite)."""


class StencilCholesky:
    """Multifrontal Cholesky factor of a symmetric positive definite 5x5-stencil matrix over pixels.

    ``A[u, neighbours[s, u]] = values[s, u]`` (``neighbours`` -1: no entry); pixel u is at
    (ys[u], xs[u]). The pixels are ordered by :func:`nested_dissection`. Each tree node, children
    first, gathers into a dense front (its own pixels E first, then the later pixels they reach)
    its pixels' rows of A and its children's update matrices, factorises the E block (LAPACK
    potrf), forms the later rows of its factor (trsm) and hands their Schur complement (syrk) to
    its parent. Where every entry goes is worked out for all nodes at once before the numeric pass.
    """

    def __init__(self, values, neighbours, ys, xs, leaf_size: int = LEAF_SIZE):
        n = values.shape[1]
        tree = nested_dissection(ys, xs, leaf_size)
        m = len(tree)
        order = np.concatenate([e for e, _ in tree])
        pos = np.empty(n, np.int64)
        pos[order] = np.arange(n)
        # Row u (in elimination order) of A: entries toward the pixels at positions nb_pos[u]
        # (-1: none; neighbour -1 reads the appended -1). (n, 25)
        nb_pos = np.ascontiguousarray(np.append(pos, -1)[neighbours[:, order]].T)
        sizes = np.array([len(e) for e, _ in tree], np.int64)
        stops = np.cumsum(sizes)
        starts = stops - sizes

        # Symbolic pass: each node's later pixels (positions), which its front holds after its own.
        later: list[np.ndarray] = []
        children: list[list[int]] = []
        for k, (_, kids) in enumerate(tree):
            stop = stops[k]
            cols = nb_pos[starts[k] : stop].ravel()
            kids = [c for c in kids if len(later[c])]  # a child reaching no later pixel is a root
            merged = np.concatenate([cols[cols >= stop]] + [later[c] for c in kids])
            merged.sort()  # np.unique is several times slower on these small arrays
            merged = merged[merged >= stop]
            later.append(
                merged[np.concatenate(([True], merged[1:] != merged[:-1]))] if len(merged) else merged
            )
            children.append(kids)
        counts = np.array([len(x) for x in later], np.int64)
        size = sizes + counts
        offset = np.concatenate([[0], np.cumsum(size)])[:-1]
        # Front j of node k holds key k * (n + 1) + position: sorted within and across nodes.
        stride = n + 1
        keys = np.concatenate(
            [
                part
                for k in range(m)
                for part in (k * stride + np.arange(starts[k], stops[k]), k * stride + later[k])
            ]
        )
        node_of = np.repeat(np.arange(m), sizes)

        # Each node's rows of A (lower triangle), as flat indices into its front (column-major).
        lower = nb_pos >= np.arange(n)[:, None]
        col = np.repeat(np.arange(n), lower.sum(1))
        row_pos = nb_pos[lower]
        k = node_of[col]
        first = starts[k]
        r = row_pos - first  # a row among the node's own pixels...
        out = np.flatnonzero(row_pos >= stops[k])  # ...or among its later pixels
        r[out] = np.searchsorted(keys, k[out] * stride + row_pos[out]) - offset[k[out]]
        entry_index = r + (col - first) * size[k]
        entry_value = np.ascontiguousarray(values[:, order].T)[lower]
        entry_bounds = np.searchsorted(col, np.append(starts, n))

        # Each child's later pixels as indices into its parent's front.
        parent = np.full(m, -1)
        for k, kids in enumerate(children):
            parent[kids] = k
        linked = np.flatnonzero(parent >= 0)
        if len(linked):
            query = np.concatenate([parent[c] * stride + later[c] for c in linked])
            local = np.searchsorted(keys, query) - np.repeat(offset[parent[linked]], counts[linked])
        else:
            local = np.zeros(0, np.int64)
        child_bounds = np.zeros(m + 1, np.int64)
        child_bounds[linked + 1] = counts[linked]
        child_bounds = np.cumsum(child_bounds)

        # Numeric pass. A front is two blocks: its own pixels' columns (all f rows) and the later x
        # later block F22, which syrk updates in place. Only lower triangles are ever written.
        self.n, self.order, self.nodes = n, order, []
        pending: dict[int, np.ndarray] = {}
        for k in range(m):
            ne, f = int(sizes[k]), int(size[k])
            nb = f - ne
            left = np.zeros(f * ne)  # column-major (f, ne)
            lo, hi = entry_bounds[k], entry_bounds[k + 1]
            left[entry_index[lo:hi]] = entry_value[lo:hi]
            f22 = np.zeros((nb, nb), order="F")
            for c in children[k]:
                li = local[child_bounds[c] : child_bounds[c + 1]]
                update = pending.pop(c)
                split = int(np.searchsorted(li, ne))  # li[:split]: this node's own pixels
                # (li[a], li[b]) += U[a, b] for b < split, column-major on both sides
                np.add.at(left, (li[:split, None] * f + li).ravel(), update[:, :split].ravel(order="F"))
                if split < len(li):
                    lj = li[split:] - ne
                    np.add.at(
                        f22.reshape(-1, order="F"),
                        (lj[:, None] * nb + lj).ravel(),
                        update[split:, split:].ravel(order="F"),
                    )
            left = left.reshape(f, ne, order="F")
            l11, info = lapack.dpotrf(left[:ne], lower=1, clean=0, overwrite_a=1)
            if info != 0:
                raise NotPositiveDefinite(f"the system is not positive definite (front {k}, info {info})")
            if nb:
                l21 = blas.dtrsm(1.0, l11, left[ne:], side=1, lower=1, trans_a=1, overwrite_b=1)
                if parent[k] >= 0:
                    pending[k] = blas.dsyrk(-1.0, l21, beta=1.0, c=f22, lower=1, overwrite_c=1)
            else:
                l21 = None
            self.nodes.append((int(starts[k]), int(stops[k]), later[k], l11, l21))

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """A^-1 rhs."""
        y = rhs[self.order].astype(np.float64)  # forward substitution in place, node by node
        for start, stop, later, l11, l21 in self.nodes:
            y1 = blas.dtrsv(l11, y[start:stop], lower=1)
            y[start:stop] = y1
            if l21 is not None:
                y[later] -= l21 @ y1
        for start, stop, later, l11, l21 in reversed(self.nodes):
            y1 = y[start:stop]
            if l21 is not None:
                y1 = y1 - l21.T @ y[later]
            y[start:stop] = blas.dtrsv(l11, y1, lower=1, trans=1)
        out = np.empty(self.n)
        out[self.order] = y
        return out


def closed_form_alpha(image: np.ndarray, trimap: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Closed-form alpha (H, W) in [0, 1] of ``image`` (H, W, 3) with ``trimap`` (H, W), float64.

    Definite pixels keep their trimap value (clipped), as in pymatting; the trimap must hold both
    definite foreground and definite background (the caller checks).
    """
    unknown, values, neighbours, rhs = unknown_laplacian(image, trimap, epsilon)
    alpha = trimap.astype(np.float64).copy()
    if rhs.size:
        ys, xs = np.divmod(np.flatnonzero(unknown), trimap.shape[1])
        with one_blas_thread():  # thousands of small LAPACK / BLAS calls: see layeringdiff.blas_threads
            alpha[unknown] = StencilCholesky(values, neighbours, ys, xs).solve(rhs)
    return np.clip(alpha, 0.0, 1.0)
