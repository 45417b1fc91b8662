"""Write webdataset shards of ready samples (512x512 by default) with a manifest.

    # procedural data (what CI uses)
    python data/make_shards.py --out data/shards --split train --num 20000
    # MAGICK x BG-20k, random pairing within the split
    python data/make_shards.py --out data/shards --split train \\
        --foregrounds /datasets/MAGICK --backgrounds /datasets/BG-20k
    # the fixed layering test set
    python data/make_shards.py --out data/shards --split test --pairs data/splits/layering_test.tsv \\
        --foregrounds /datasets/MAGICK --backgrounds /datasets/BG-20k

Output: ``{out}/{split}/{split}-000000.tar ...``, one JSON per finished shard and
``{out}/{split}/manifest.json`` (counts, source of every sample, skipped samples with reasons).
Each tar is written to a temporary file and renamed, so no partial shard is ever left behind;
re-running the same command skips finished shards. Read with ``data=shards``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from layeringdiff.data.folders import FolderComposites
from layeringdiff.data.shard_writer import write_shards
from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.errors import UserError, one_line


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="shard root")
    ap.add_argument("--split", default="train", choices=("train", "val", "test"))
    ap.add_argument("--foregrounds", type=Path, help="MAGICK / RGBA folder (omit for synthetic data)")
    ap.add_argument("--backgrounds", type=Path, help="BG-20k / image folder (omit for synthetic data)")
    ap.add_argument("--pairs", type=Path, help="fixed pair list (TSV) instead of random pairing")
    ap.add_argument("--num", type=int, help="samples to write (synthetic: required; folders: default all)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--image-format", default="tiff", choices=("png", "tiff", "npy"))
    ap.add_argument("--fractions", default="0.98,0.01,0.01", help="train,val,test hash-split fractions")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fractions = dict(zip(("train", "val", "test"), (float(x) for x in args.fractions.split(","))))
    try:
        if args.foregrounds is None and args.backgrounds is None:
            if args.num is None:
                ap.error("--num is required for synthetic shards")
            dataset = SyntheticLayers(args.num, size=args.size, seed=args.seed, split=args.split)
        elif args.foregrounds is None or args.backgrounds is None:
            ap.error("give both --foregrounds and --backgrounds (or neither, for synthetic data)")
        else:
            dataset = FolderComposites(
                args.foregrounds, args.backgrounds, split=args.split, num_samples=args.num, size=args.size,
                seed=args.seed, pairs=args.pairs, fractions=fractions,
            )  # fmt: skip
        manifest = write_shards(
            dataset, args.out, args.split, args.per_shard, args.image_format, description={"argv": sys.argv}
        )
    except UserError as e:  # a missing / empty folder, an unreadable image: one line
        raise SystemExit(f"make_shards: {one_line(e)}") from None
    print(
        f"{args.out / args.split}: {manifest['num_samples']} samples in {manifest['num_shards']} shards, "
        f"{manifest['num_skipped']} skipped"
    )
    return manifest


if __name__ == "__main__":
    main()
