"""Procedural layers, deterministic by seed: what tests, smoke runs and CI train and evaluate on.

Foregrounds are shapes with a mix of hard (1-pixel anti-aliased) and soft (feathered) edges,
thin hair-like strands and a semi-transparent region (alpha 0.2-0.8), coloured with gradients and
texture over the whole frame. Backgrounds mix gradients, stripes, low-frequency texture and small
high-frequency detail. Both are 8-bit at birth, so a sample round-trips losslessly through PNG.
"""

from __future__ import annotations

import cv2
import numpy as np
from torch.utils.data import Dataset

from layeringdiff.data.pairs import Pair
from layeringdiff.data.recipe import TRIMAP_KERNEL_RANGE, make_sample
from layeringdiff.data.splits import stable_seed
from layeringdiff.errors import ConfigError

COLOURS = {
    "red": (200, 40, 40),
    "orange": (235, 130, 30),
    "yellow": (230, 210, 50),
    "green": (50, 160, 60),
    "teal": (30, 150, 150),
    "blue": (40, 80, 210),
    "purple": (130, 60, 170),
    "pink": (235, 120, 170),
    "brown": (120, 75, 40),
    "white": (235, 235, 230),
    "grey": (128, 128, 128),
    "black": (25, 25, 30),
}
SHAPES = ("blob", "star", "ring", "leaf")
_ANGLES = np.linspace(0, 2 * np.pi, 2048, endpoint=False, dtype=np.float32)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Broadcastable pixel coordinates: x (1, size) and y (size, 1)."""
    r = np.arange(size, dtype=np.float32)
    return r[None, :], r[:, None]


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a ``cells`` x ``cells`` random grid upsampled bicubically."""
    small = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    out = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return out.reshape(size, size, channels)


def _colour_field(rng: np.random.Generator, size: int, base: np.ndarray) -> np.ndarray:
    """Full-frame colour around ``base`` (RGB 0..255): a linear gradient plus a texture."""
    x, y = _grid(size)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = ((x * np.cos(theta) + y * np.sin(theta)) / size)[..., None]
    shift = rng.uniform(-40, 40, 3).astype(np.float32)
    # mostly-luminance texture keeps the colour name of the caption true
    noise = _smooth_noise(rng, size, int(rng.integers(4, 24)), 3)
    texture = (np.float32(0.35) * noise + noise.mean(axis=2, keepdims=True)) * np.float32(rng.uniform(15, 45))
    return base.astype(np.float32) + ramp * shift + texture


def _shape_distance(rng: np.random.Generator, size: int, shape: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Approximate signed distance (pixels, negative inside) to a random shape, angle index, radius.

    The angle index maps each pixel to its row of ``_ANGLES`` (angle around the shape centre).
    """
    x, y = _grid(size)
    cx, cy = rng.uniform(0.38, 0.62, 2) * size
    r0 = rng.uniform(0.2, 0.3) * size
    dx = np.broadcast_to(x - np.float32(cx), (size, size))
    dy = np.broadcast_to(y - np.float32(cy), (size, size))
    dist, ang = cv2.cartToPolar(np.ascontiguousarray(dx), np.ascontiguousarray(dy))
    # radial profiles are functions of the angle only: tabulate them, then look up per pixel
    table = _ANGLES
    ang_idx = np.minimum((ang * (2048 / (2 * np.pi))).astype(np.int32), 2047)
    if shape == "star":
        k, amp, ph = int(rng.integers(4, 8)), rng.uniform(0.25, 0.45), rng.uniform(0, 6.3)
        radius = (r0 * (1 + amp * np.cos(k * table + ph))).astype(np.float32)[ang_idx]
    elif shape == "leaf":
        sx, sy = rng.uniform(0.6, 1.0), rng.uniform(1.1, 1.5)
        rot = rng.uniform(0, np.pi)
        u = dx * np.cos(rot) + dy * np.sin(rot)
        v = -dx * np.sin(rot) + dy * np.cos(rot)
        dist = np.sqrt((u / sx) ** 2 + (v / sy) ** 2)
        radius = np.float32(r0)
    else:  # blob and ring: smooth random radial profile
        profile = np.full_like(table, r0)
        for k in range(2, 6):
            profile += r0 * rng.uniform(0, 0.12) * np.cos(k * table + rng.uniform(0, 6.3))
        radius = profile[ang_idx]
    sdf = dist - radius
    if shape == "ring":
        sdf = np.maximum(sdf, r0 * rng.uniform(0.35, 0.55) - dist)
    return sdf.astype(np.float32), ang_idx, float(r0)


def _hair(rng: np.random.Generator, size: int, sdf: np.ndarray, n: int) -> np.ndarray:
    """Thin anti-aliased strands growing outward from the shape boundary, alpha in [0, 1]."""
    canvas = np.zeros((size, size), np.uint8)
    ys, xs = np.nonzero(np.abs(sdf) < 1.0)
    if len(xs) == 0:
        return canvas.astype(np.float32)
    gy, gx = np.gradient(sdf)
    starts = rng.integers(0, len(xs), n)
    seg = max(2.0, size / 64)
    for s in starts:
        px, py = float(xs[s]), float(ys[s])
        nx, ny = gx[ys[s], xs[s]], gy[ys[s], xs[s]]
        heading = np.arctan2(ny, nx) + rng.normal(0, 0.4)
        steps = int(rng.integers(6, 20))
        turns = np.cumsum(rng.normal(0, 0.25, steps)) + heading
        pts = np.stack([px + np.cumsum(seg * np.cos(turns)), py + np.cumsum(seg * np.sin(turns))], 1)
        pts = np.concatenate([[[px, py]], pts]).round().astype(np.int32)
        shade = int(rng.integers(150, 256))
        thickness = 1 if size <= 512 else int(rng.integers(1, 3))
        cv2.polylines(canvas, [pts], False, shade, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255.0


def synth_foreground(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """One random foreground layer.

    Args:
        rng: the generator that decides everything (seeded by the caller).
        size: side length in pixels.

    Returns:
        ``(rgb, alpha, caption)``: uint8 (size, size, 3), uint8 (size, size) and a caption such as
        "a red blob with hair".
    """
    colour = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    sdf, ang_idx, r0 = _shape_distance(rng, size, shape)
    # Edge width varies around the outline: hard (anti-aliased, ~1 px) on one side, soft on the other.
    soft_width = rng.uniform(0.02, 0.08) * size
    soft_dir = rng.uniform(0, 2 * np.pi)
    softness = np.clip(np.cos(_ANGLES - soft_dir) * 1.5, 0, 1)[ang_idx] if rng.random() < 0.8 else 0.0
    width = 1.0 + softness * soft_width
    alpha = np.clip(0.5 - sdf / width, 0.0, 1.0)

    semi = rng.random() < 0.7
    if semi:  # a translucent patch inside the shape, like glass or thin fabric
        x, y = _grid(size)
        interior = np.argwhere(sdf < -0.3 * r0)
        cy, cx = interior[rng.integers(len(interior))] if len(interior) else (size / 2, size / 2)
        rx, ry = rng.uniform(0.25, 0.5, 2) * r0
        inside = np.clip(1.5 - np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) * 1.5, 0, 1)
        level = rng.uniform(0.2, 0.8)
        alpha = alpha * (1.0 - inside * (1.0 - level))

    n_hair = int(rng.integers(15, 60)) if rng.random() < 0.75 else 0
    if n_hair:
        alpha = np.maximum(alpha, _hair(rng, size, sdf, n_hair))

    rgb = _colour_field(rng, size, np.array(COLOURS[colour]))
    if rng.random() < 0.5:  # spots give the foreground its own high frequencies
        spots = _smooth_noise(rng, size, int(rng.integers(16, 48)))[..., 0]
        rgb = rgb + (spots > 0.5)[..., None] * (rng.uniform(-60, 60) + rng.uniform(-15, 15, 3)).astype(
            np.float32
        )

    parts = [f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}"]
    if n_hair:
        parts.append("with hair")
    if semi:
        parts.append("and a semi-transparent patch" if n_hair else "with a semi-transparent patch")
    caption = " ".join(parts)
    return _to_uint8(rgb), _to_uint8(alpha * 255.0), caption


def synth_background(rng: np.random.Generator, size: int | tuple[int, int]) -> np.ndarray:
    """One random background: gradient + optional stripes + texture + fine detail.

    Args:
        rng: the generator that decides everything.
        size: side length, or ``(height, width)``.

    Returns:
        uint8 (H, W, 3).
    """
    h, w = (size, size) if isinstance(size, int) else size
    side = max(h, w)
    x, y = np.arange(w, dtype=np.float32)[None, :], np.arange(h, dtype=np.float32)[:, None]
    c0, c1 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    cx, cy = np.float32(np.cos(theta) / side), np.float32(np.sin(theta) / side)
    t = x * cx + y * cy
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    img = c0 + t[..., None] * (c1 - c0)

    if rng.random() < 0.6:  # stripes of random frequency and orientation (separable: sin(a + b))
        phi = rng.uniform(0, np.pi)
        k = np.float32(2 * np.pi / (rng.uniform(0.02, 0.15) * side))
        ax, ay = x * (k * np.float32(np.cos(phi))), y * (k * np.float32(np.sin(phi)))
        wave = np.sin(ax) * np.cos(ay) + np.cos(ax) * np.sin(ay)
        img += wave[..., None] * rng.uniform(10, 50, 3).astype(np.float32)
    texture = _smooth_noise(rng, side, int(rng.integers(6, 40)), 3)[:h, :w]
    img += texture * np.float32(rng.uniform(10, 50))
    # small high-frequency detail: pixel grain and scattered specks
    img += (rng.random((h, w, 1), dtype=np.float32) - np.float32(0.5)) * np.float32(rng.uniform(4, 20))
    img = _to_uint8(img)
    n_specks = int(rng.integers(0, 200) * side / 512)
    if n_specks:
        pts = rng.integers(0, [w, h], (n_specks, 2))
        cols = rng.integers(0, 256, (n_specks, 3))
        for (px, py), col in zip(pts.tolist(), cols.tolist()):
            cv2.circle(img, (px, py), int(rng.integers(1, 3)), col, -1, cv2.LINE_AA)
    return img


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def synthetic_layers(seed: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Foreground RGB, alpha, background RGB and caption for one seed (all uint8, size x size)."""
    fg_rng = np.random.default_rng(stable_seed("synthetic-fg", seed))
    bg_rng = np.random.default_rng(stable_seed("synthetic-bg", seed))
    rgb, alpha, caption = synth_foreground(fg_rng, size)
    return rgb, alpha, synth_background(bg_rng, size), caption


class SyntheticLayers(Dataset):
    """Composites of procedural layers; item ``i`` depends only on ``(seed, split, i, size)``.

    Args:
        num_samples: length of the data set.
        size: side length of every image.
        seed: base seed; different seeds give different data sets.
        split: mixed into the seed so train / val / test never share samples.
        kernel_range: inclusive range of the random trimap erosion kernels.
    """

    def __init__(
        self,
        num_samples: int,
        size: int = 512,
        seed: int = 0,
        split: str = "train",
        kernel_range: tuple[int, int] = TRIMAP_KERNEL_RANGE,
    ) -> None:
        if num_samples < 0 or size < 8:
            raise ConfigError(
                f"SyntheticLayers needs num_samples >= 0 and size >= 8, got {num_samples}, {size}"
            )
        self.num_samples, self.size, self.seed, self.split = int(num_samples), int(size), int(seed), split
        self.kernel_range = tuple(kernel_range)
        self.skipped: dict[str, str] = {}  # never filled: generated samples cannot be corrupt

    def __len__(self) -> int:
        return self.num_samples

    def key(self, index: int) -> str:
        return f"synthetic-{self.split}-s{self.seed}-{index:07d}"

    def pair(self, index: int) -> Pair:
        """The (key, fg id, bg id, trimap seed) row of sample ``index``, as in a pair list."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        sample_seed = stable_seed(self.seed, self.split, index)
        return Pair(
            self.key(index),
            f"synthetic-fg-{sample_seed}",
            f"synthetic-bg-{sample_seed}",
            stable_seed("trimap", sample_seed),
        )

    def load(self, index: int) -> dict:
        pair = self.pair(index)
        sample_seed = int(pair.fg_id.rsplit("-", 1)[1])
        fg, alpha, bg, caption = synthetic_layers(sample_seed, self.size)
        sample = make_sample(fg, alpha, bg, pair.key, caption, pair.seed, self.kernel_range)
        sample["source"] = f"synthetic:{sample_seed}"
        return sample

    def __getitem__(self, index: int) -> dict:
        sample = self.load(index)
        sample.pop("source")
        return sample
