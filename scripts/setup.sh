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
# opencv-contrib-python-headless replaces opencv-python-headless (both ship cv2): a venv made
# before the switch drops the old one first, then gets the contrib files written afresh.
if "$VENV/bin/python" -m pip show opencv-python-headless >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall --quiet -y opencv-python-headless
  "$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps -c requirements/lock.txt opencv-contrib-python-headless
fi
"$VENV/bin/python" -m pip install --quiet -c requirements/lock.txt -e '.[dev]'
# pymatting compiles its numba kernels (explicit signatures, cache=True) when imported; do it once
# here, so the first `python infer.py` loads them from the cache instead of compiling (~90 s).
echo "compiling pymatting's numba kernels (once)..."
"$VENV/bin/python" -c "import pymatting"
