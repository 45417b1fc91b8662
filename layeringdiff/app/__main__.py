"""``python -m layeringdiff.app [--port 7860] [--layering auto|classical|layeringdiff] [--jobs DIR]``."""

from __future__ import annotations

import argparse
import sys

from layeringdiff.errors import UserError, one_line


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m layeringdiff.app", description=__doc__)
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--layering", default="auto", help="auto (layeringdiff when its weights exist), or a member"
    )
    p.add_argument("--jobs", default="outputs/app", help="folder for uploads and output folders")
    args = p.parse_args(argv)
    from layeringdiff.app.server import create_app

    try:
        app = create_app({"layering": args.layering, "jobs_dir": args.jobs})
    except UserError as e:
        sys.exit(f"error: {one_line(e)}")
    print(f"layering: {app.config['RUNNER'].layering}; open http://127.0.0.1:{args.port}/", flush=True)
    app.run(host="127.0.0.1", port=args.port, threaded=False)


if __name__ == "__main__":
    main()
