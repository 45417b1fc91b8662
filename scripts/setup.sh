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
# pymatting (Germer et al. F / B estimation) compiles its numba kernels (explicit signatures,
# cache=True) when first imported, ~50 s of one core. Install it and its few dependencies first and
# compile in the background while pip installs the rest, so the first `python infer.py` loads them
# from the cache. pip leaves these pinned packages alone afterwards (same versions from the lock).
"$VENV/bin/python" -m pip install --quiet -c requirements/lock.txt PyMatting numba llvmlite numpy scipy pillow
"$VENV/bin/python" -c "import pymatting" >"$VENV/pymatting_compile.log" 2>&1 &
compile=$!
# torch and torchvision next, pinned, so nothing else drags in another build.
"$VENV/bin/python" -m pip install --quiet -c requirements/lock.txt torch==2.14.1 torchvision==0.29.1
# opencv-contrib-python-headless replaces opencv-python-headless (both ship cv2): a venv made
# before the switch drops the old one first, then gets the contrib files written afresh.
if "$VENV/bin/python" -m pip show opencv-python-headless >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall --quiet -y opencv-python-headless
  "$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps -c requirements/lock.txt opencv-contrib-python-headless
fi
"$VENV/bin/python" -m pip install --quiet -c requirements/lock.txt -e '.[dev]'
if ! wait "$compile"; then
  echo "setup: compiling pymatting's numba kernels failed (log: $VENV/pymatting_compile.log)" >&2
  exit 1
fi
