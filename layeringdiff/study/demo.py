"""A small synthetic study: output folders for a few fake methods, for trying the server and tests.

``python -m layeringdiff.study demo OUT`` writes ``OUT/<method>/<example>/{composite,foreground,
background,alpha}.png + meta.json`` (docs/architecture.md layout) and ``OUT/prompts.json``. The images are
procedural (a disc over a gradient); methods differ by how much noise they add. Each PNG carries a
text chunk naming its method, which the server must strip (a blinding check).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from layeringdiff.files import atomic_write_bytes

SUBJECTS = ("A red ball", "A glass bottle", "A small cat", "A yellow kite", "A wooden chair", "A blue bird")
SCENES = (
    "on a beach",
    "in a forest",
    "in a kitchen",
    "over the mountains",
    "in a city street",
    "in the snow",
)


def _png(arr: np.ndarray, path: Path, method: str) -> None:
    import io

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"layeringdiff demo method={method}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buf.getvalue())


def _layers(index: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground RGB, background RGB (float [0,1], HxWx3) and alpha (HxWx1) of one example."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    c0, c1 = rng.uniform(0, 1, (2, 3))
    bg = yy[..., None] * c0 + (1 - yy[..., None]) * c1
    cy, cx = rng.uniform(0.35, 0.65, 2)
    radius = rng.uniform(0.15, 0.3)
    dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    alpha = np.clip((radius - dist) * size / 2 + 0.5, 0, 1)[..., None]
    fg = np.broadcast_to(rng.uniform(0, 1, 3), bg.shape).copy()
    return fg, bg, alpha


def build_demo_study(
    root: str | Path,
    methods: Sequence[str] = ("method_a", "method_b"),
    num_examples: int = 3,
    size: int = 48,
) -> dict:
    """Write a synthetic study: per-method output folders and a prompt file.

    Args:
        root: where to write (created).
        methods: method names (folder names under ``root``).
        num_examples: examples per method.
        size: image side in pixels.

    Returns:
        ``{"methods": {name: folder}, "prompts": prompt file}`` ready for the study config.
    """
    root = Path(root)
    prompts = {}
    for i in range(num_examples):
        key = f"{i:05d}"
        subject, scene = SUBJECTS[i % len(SUBJECTS)], SCENES[(i // len(SUBJECTS) + i) % len(SCENES)]
        prompts[key] = {
            "prompt": f"{subject} {scene}",
            "foreground_prompt": subject,
            "background_prompt": scene,
        }
        fg, bg, alpha = _layers(i, size)
        for m, method in enumerate(methods):
            noise = np.random.default_rng([i, m]).normal(0, 0.04 * m, fg.shape)
            f = np.clip(fg + noise, 0, 1)
            b = np.clip(bg + noise, 0, 1)
            comp = alpha * f + (1 - alpha) * b
            out = root / method / key
            out.mkdir(parents=True, exist_ok=True)
            u8 = lambda x: (x * 255 + 0.5).astype(np.uint8)  # noqa: E731
            _png(np.concatenate([u8(f), u8(alpha)], axis=2), out / "foreground.png", method)
            _png(u8(b), out / "background.png", method)
            _png(u8(comp), out / "composite.png", method)
            _png(u8(alpha)[..., 0], out / "alpha.png", method)
            meta = {**prompts[key], "method": method, "seed": i}
            atomic_write_bytes(out / "meta.json", json.dumps(meta, indent=2).encode())
    prompt_file = root / "prompts.json"
    atomic_write_bytes(prompt_file, json.dumps(prompts, indent=2).encode())
    return {"methods": {m: str(root / m) for m in methods}, "prompts": str(prompt_file)}
