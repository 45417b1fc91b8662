"""Command line of the user study.

    python -m layeringdiff.study serve methods.ours=DIR methods.germer=DIR [prompts=FILE] [KEY=VALUE ...]
    python -m layeringdiff.study links  ...same overrides...   # print the participant and admin links
    python -m layeringdiff.study demo OUT                      # synthetic method folders to try it

``serve`` and ``links`` compose ``configs/study.yaml`` with Hydra overrides (``methods.NAME=DIR``
adds a method). The table is made by ``evaluate.py eval=table3 study.db=PATH``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def default_config_dir() -> Path:
    """``$LAYERINGDIFF_ROOT/configs``, else ``./configs``, else the repository's ``configs``."""
    for root in (os.environ.get("LAYERINGDIFF_ROOT"), "."):
        if root and (Path(root) / "configs" / "study.yaml").is_file():
            return (Path(root) / "configs").resolve()
    return Path(__file__).resolve().parents[2] / "configs"


def compose_config(overrides: list[str], config_dir: str | Path | None = None, config_name: str = "study"):
    """Compose the study config; ``methods.NAME=DIR`` may add a method not in the file."""
    from hydra import compose, initialize_config_dir

    fixed = ["++" + o if o.startswith("methods.") else o for o in overrides]
    with initialize_config_dir(
        version_base="1.3", config_dir=str(Path(config_dir or default_config_dir()).resolve())
    ):
        return compose(config_name=config_name, overrides=fixed)


def links(study, base_url: str) -> list[str]:
    """Lines listing every participant link and the admin link."""
    lines = [
        f"{label}: {base_url}/p/{token}"
        for token, label in sorted(study.participants.items(), key=lambda t: t[1])
    ]
    lines.append(f"admin: {base_url}/admin (sign in with the token from {study.admin_token_source})")
    return lines


def check_overrides(overrides: list[str]) -> None:
    """Refuse a token on the command line: every user of the machine sees it in the process list."""
    from layeringdiff.errors import ConfigError
    from layeringdiff.study.app import ADMIN_TOKEN_ENV

    for o in overrides:
        if o.lstrip("+~").split("=", 1)[0] == "admin_token":
            raise ConfigError(
                "admin_token on the command line shows in the process list; put the token in a file "
                f"(admin_token_file=PATH) or the environment variable {ADMIN_TOKEN_ENV}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m layeringdiff.study", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the study server"),
        ("links", "print participant and admin links"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config-dir", default=None, help="folder holding study.yaml (default: ./configs)")
        p.add_argument("--config-name", default="study")
        p.add_argument(
            "overrides", nargs="*", help="Hydra overrides, e.g. methods.ours=DIR admin_token_file=PATH"
        )
    p = sub.add_parser("demo", help="write synthetic method folders and a prompt file")
    p.add_argument("out")
    p.add_argument("--methods", nargs="+", default=["method_a", "method_b"])
    p.add_argument("--examples", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.command == "demo":
        from layeringdiff.study.demo import build_demo_study

        made = build_demo_study(args.out, args.methods, args.examples, args.size)
        methods = " ".join(f"methods.{m}={d}" for m, d in made["methods"].items())
        print(
            f"python -m layeringdiff.study serve {methods} prompts={made['prompts']} db={args.out}/study.db"
        )
        return 0

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from layeringdiff.errors import UserError, one_line
    from layeringdiff.study.app import StudySettings, create_app

    try:
        check_overrides(args.overrides)
        settings = StudySettings.from_config(
            compose_config(args.overrides, args.config_dir, args.config_name)
        )
        app = create_app(settings)
    # a bad setting or override (Hydra / OmegaConf composing the user's overrides): one line;
    # anything else is a bug and keeps its traceback
    except (UserError, HydraException, OmegaConfBaseException) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    study = app.extensions["study"]
    base_url = f"http://{settings.host}:{settings.port}"
    print("\n".join(links(study, base_url)), flush=True)
    if args.command == "serve":
        from werkzeug.serving import run_simple

        run_simple(settings.host, settings.port, app, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
