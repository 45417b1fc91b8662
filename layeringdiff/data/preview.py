"""Grid PNG of what the model sees: one row per sample, columns composite | alpha | trimap | F | B.

Usage (Hydra-free, key=value arguments)::

    python -m layeringdiff.data.preview out=preview.png                 # synthetic, 8 samples
    python -m layeringdiff.data.preview data=folders n=6 size=256 \\
        foregrounds=data/magick backgrounds=data/BG-20k out=grid.png
    python -m layeringdiff.data.preview data=shards root=data/shards split=val out=grid.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from layeringdiff.errors import ConfigError, UserError, one_line
from layeringdiff.files import atomic_write_bytes
from layeringdiff.images import tensor_to_uint8

COLUMNS = ("composite", "alpha", "trimap", "foreground", "background")


def preview_grid(samples: list[dict], pad: int = 4) -> Image.Image:
    """Tile samples into an RGB grid (rows = samples, columns = :data:`COLUMNS`), with headers.

    Args:
        samples: unbatched sample dicts of the data contract.
        pad: gap between tiles in pixels.
    """
    if not samples:
        raise ValueError("preview needs at least one sample")
    size = samples[0]["composite"].shape[-1]
    head = 14
    grid = Image.new(
        "RGB", (len(COLUMNS) * (size + pad) + pad, head + len(samples) * (size + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(grid)
    for c, name in enumerate(COLUMNS):
        draw.text((pad + c * (size + pad), 1), name, fill="black")
    for r, sample in enumerate(samples):
        for c, name in enumerate(COLUMNS):
            x = sample[name]
            x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
            tile = Image.fromarray(tensor_to_uint8(x), "RGB")
            grid.paste(tile, (pad + c * (size + pad), head + pad + r * (size + pad)))
    return grid


def _required(args: dict, key: str):
    if key not in args:
        raise ConfigError(f"data={args.get('data')} needs the argument {key}=...")
    return args[key]


def _dataset(args: dict):
    data, size, seed, split = (
        args.get("data", "synthetic"),
        int(args.get("size", 256)),
        int(args.get("seed", 0)),
        args.get("split", "train"),
    )
    n = int(args.get("n", 8))
    if data == "synthetic":
        from layeringdiff.data.synthetic import SyntheticLayers

        return SyntheticLayers(n, size=size, seed=seed, split=split)
    if data == "folders":
        from layeringdiff.data.folders import FolderComposites

        return FolderComposites(
            _required(args, "foregrounds"),
            _required(args, "backgrounds"),
            split=split,
            num_samples=n,
            size=size,
            seed=seed,
        )
    if data == "shards":
        from layeringdiff.data.shards import ShardDataset

        return ShardDataset(
            _required(args, "root"), split=split, num_samples=n, size=size, seed=seed, shuffle_buffer=0
        )
    raise SystemExit(f"preview: unknown data={data!r} (synthetic | folders | shards)")


def main(argv: list[str] | None = None) -> Path:
    args = dict(OmegaConf.from_dotlist(list(sys.argv[1:] if argv is None else argv)))
    out = Path(args.get("out", "preview.png"))
    n = int(args.get("n", 8))
    try:
        ds = _dataset(args)
    except UserError as e:  # missing / empty folder, no manifest, a missing argument: one line
        raise SystemExit(f"preview: {one_line(e)}") from None
    samples = (
        [s for _, s in zip(range(n), iter(ds))]
        if isinstance(ds, torch.utils.data.IterableDataset)
        else [ds[i] for i in range(min(n, len(ds)))]
    )
    grid = preview_grid(samples)
    import io

    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {out} ({len(samples)} samples, {grid.width}x{grid.height}); captions:")
    for s in samples:
        print(f"  {s['key']}: {s['fg_caption']!r}")
    return out


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
