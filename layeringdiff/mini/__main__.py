"""Helper steps of experiments/mini.sh (docs/mini.md).

python -m layeringdiff.mini repo --vae OUT/models/vae --out OUT/models/sd2_mini
python -m layeringdiff.mini vae-psnr --vae OUT/models/vae --out OUT/vae_psnr.json
python -m layeringdiff.mini plot --out OUT/loss_curves.png vae=OUT/runs/vae/csv/version_0/metrics.csv ...
python -m layeringdiff.mini figure --table4 OUT/table4 --out OUT/samples.png
python -m layeringdiff.mini regions --models OUT/models --out OUT/regions_val.json
python -m layeringdiff.mini summary --out OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m layeringdiff.mini", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("repo", help="SD2-inpainting-style base repo around the trained VAE")
    r.add_argument("--vae", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--schedule", default="zero_snr", help="noise schedule: zero_snr (default) or sd2 (docs/mini.md)")
    v = sub.add_parser("vae-psnr", help="reconstruction PSNR on held-out synthetic images -> JSON")
    v.add_argument("--vae", required=True)
    v.add_argument("--out", required=True)
    v.add_argument("--num", type=int, default=64, help="samples (x 3 layers)")
    v.add_argument("--size", type=int, default=64)
    v.add_argument("--split", default="test")
    pl = sub.add_parser("plot", help="loss curves from CSVLogger metrics files")
    pl.add_argument("--out", required=True)
    pl.add_argument("--column", default="train/loss")
    pl.add_argument("runs", nargs="+", help="name=path/to/metrics.csv")
    f = sub.add_parser("figure", help="composite | F | mini F | B | mini B | germer_inpaint B")
    f.add_argument("--table4", required=True, help="the Table 4 run folder")
    f.add_argument("--out", required=True)
    f.add_argument("--num", type=int, default=4)
    g = sub.add_parser("regions", help="background error by region (copied / thin / hole) on the val split -> JSON")
    g.add_argument("--models", required=True, help="OUT/models of a mini run")
    g.add_argument("--out", required=True)
    g.add_argument("--num", type=int, default=32)
    g.add_argument("--split", default="val")
    s = sub.add_parser("summary", help="stage times, VAE PSNR and Table 4 of a mini run -> summary.json")
    s.add_argument("--out", required=True, help="the mini run folder")
    return p


def main(argv: list[str] | None = None) -> int:
    from layeringdiff.mini import report

    args = _parser().parse_args(argv)
    try:
        if args.cmd == "repo":
            from layeringdiff.mini.repo import build_repo

            print(build_repo(args.out, args.vae, schedule=args.schedule))
        elif args.cmd == "vae-psnr":
            result = report.vae_psnr(args.vae, args.num, args.size, args.split)
            report.write_json(result, args.out)
            print(f"VAE reconstruction PSNR {result['psnr_db']:.2f} dB on {result['num_images']} images")
        elif args.cmd == "plot":
            bad = [r for r in args.runs if "=" not in r]
            if bad:
                raise ValueError(f"plot: runs must be name=metrics.csv, got {bad}")
            print(report.loss_plot(dict(r.split("=", 1) for r in args.runs), args.out, args.column))
        elif args.cmd == "regions":
            from layeringdiff.mini.regions import analyse

            result = analyse(args.models, args.num, args.split)
            report.write_json(result, args.out)
            for name, row in result["methods"].items():
                shares = " + ".join(f"{k} {row[k]:.1f}" for k in ("copied", "thin", "hole"))
                print(f"{name:24s} BG MAD x1e3 {row['bg_mad']:.1f} = {shares}; FG MAD x1e3 {row['fg_mad']:.2f}")
        elif args.cmd == "figure":
            print(report.sample_figure(Path(args.table4) / "table4_figure", args.out, args.num))
        else:
            out = Path(args.out)
            summary = {
                "stages": report.stage_times(out / "times"),
                "vae": json.loads((out / "vae_psnr.json").read_text()),
                "table4": json.loads((out / "table4" / "table4.json").read_text()),
            }
            print(report.write_json(summary, out / "summary.json"))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
