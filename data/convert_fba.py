"""Convert the authors' FBA Matting checkpoint (``FBA.pth``) into the folder the project loads.

    python data/convert_fba.py --checkpoint FBA.pth --out weights/fba

``FBA.pth`` (the "FBA Table. 4" model of the authors' repository, 139 MB) is a pickled PyTorch
state dict. It is read once here with ``torch.load(..., weights_only=True)`` (tensors only, no
code runs), loaded strictly into :class:`layeringdiff.networks.fba.FBANet`, and written as
``config.json`` + ``model.safetensors``; everything else loads only that folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from layeringdiff.networks.fba_matting import convert_released


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="the authors' FBA.pth")
    ap.add_argument("--out", type=Path, required=True, help="new folder to write (e.g. weights/fba)")
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"convert_fba: {args.out} already exists and is not empty")
    try:
        out = convert_released(args.checkpoint, args.out)
    except (OSError, ValueError) as e:
        raise SystemExit(f"convert_fba: {e}") from None
    print(f"wrote {out} (config.json + model.safetensors)")
    return out


if __name__ == "__main__":
    main()
