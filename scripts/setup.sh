#!/usr/bin/env bash
# Create .venv (if missing) and install the package with its dev extras at the exact versions of
# requirements/lock.txt (refresh it with scripts/refresh_lock.sh). Idempotent and quick when
# everything is already installed. Usage: bash scripts/setup.sh   (PYTHON=python3.11 to choose)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
# torch and torchvision first, pinned, so nothing else drags in another build.
"$VENV/bin/python" -m pip install --quiet -c requirements/lock.txt torch==2.14.1 torchvision==0.29.1
"$VENV/bin/python" -m pip install --quiet -c requirements/lock.txt -e '.[dev]'
