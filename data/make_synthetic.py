"""Write procedural foregrounds / backgrounds in the MAGICK and BG-20k layouts.

    python data/make_synthetic.py --out data/synthetic --num-fg 200 --num-bg 200
    # -> data/synthetic/MAGICK/{magick_index.tsv, images/..}  data/synthetic/BG-20k/{train,testval}/

Files already there are kept, so an interrupted run resumes. Use the result with
``python train.py data=folders paths.data_dir=data/synthetic``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from layeringdiff.data.synthetic_folders import write_bg20k_folder, write_magick_folder


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--num-fg", type=int, default=200)
    ap.add_argument("--num-bg", type=int, default=200)
    ap.add_argument("--fg-size", type=int, default=1024, help="side of the square RGBA PNGs (MAGICK: 1024)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    fg = write_magick_folder(args.out / "MAGICK", args.num_fg, size=args.fg_size, seed=args.seed)
    bg = write_bg20k_folder(args.out / "BG-20k", args.num_bg, seed=args.seed)
    print(f"foregrounds: {fg} ({args.num_fg}); backgrounds: {bg} ({args.num_bg})")


if __name__ == "__main__":
    main()
