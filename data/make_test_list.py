"""Write the fixed layering test set: 1,000 composites of MAGICK test foregrounds x BG-20k test
backgrounds, with their trimap seeds, as a TSV (``key fg_id bg_id seed``).

    python data/make_test_list.py --foregrounds /datasets/MAGICK --backgrounds /datasets/BG-20k \\
        --out data/splits/layering_test.tsv
    python data/make_test_list.py --synthetic --out data/splits/layering_test_synthetic.tsv

Foregrounds are MAGICK's stable-hash "test" split (98/1/1 by page_id), backgrounds BG-20k's
``testval/`` minus its hash-chosen validation half. Only the local index files and folder
listings are read, never the pixels. The synthetic list enumerates ``SyntheticLayers(num,
seed=seed, split="test")``, the CI stand-in for the same set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from layeringdiff.data.pairs import make_pairs, write_pair_list
from layeringdiff.data.sources import background_split, foreground_split, list_foregrounds
from layeringdiff.data.synthetic import SyntheticLayers
from layeringdiff.errors import UserError, one_line


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--foregrounds", type=Path, help="MAGICK folder (magick_index.tsv + images/) or RGBA folder"
    )
    ap.add_argument("--backgrounds", type=Path, help="BG-20k folder (train/, testval/) or image folder")
    ap.add_argument("--synthetic", action="store_true", help="list the procedural test set instead")
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fractions", default="0.98,0.01,0.01", help="train,val,test hash-split fractions")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    fractions = dict(zip(("train", "val", "test"), (float(x) for x in args.fractions.split(","))))
    if args.synthetic:
        ds = SyntheticLayers(args.num, seed=args.seed, split="test")
        pairs = [ds.pair(i) for i in range(args.num)]
    else:
        if args.foregrounds is None or args.backgrounds is None:
            ap.error("--foregrounds and --backgrounds are required (or --synthetic)")
        try:
            fgs = foreground_split(list_foregrounds(args.foregrounds), "test", fractions)
            bgs = background_split(args.backgrounds, "test", fractions=fractions).entries
            pairs = make_pairs(fgs, bgs, args.num, args.seed)
        except UserError as e:
            raise SystemExit(f"make_test_list: {one_line(e)}") from None
    write_pair_list(args.out, pairs)
    print(f"wrote {args.out}: {len(pairs)} composites")
    return args.out


if __name__ == "__main__":
    main()
