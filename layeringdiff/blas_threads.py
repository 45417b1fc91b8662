"""One BLAS thread for a block of code: many small BLAS calls run faster, in CPU time, on one thread.

OpenBLAS (numpy's and scipy's wheels each load their own copy) splits a call across its threads
and then keeps them spinning for the next one. Code that makes thousands of small calls -- the
multifrontal Cholesky of :mod:`layeringdiff.pipeline.closed_form` -- then spends most of its CPU
time in that spinning, tens of times more than the work on a loaded machine. ``one_blas_thread()``
sets the calling thread's OpenBLAS thread count to 1 in every OpenBLAS library the process has
loaded (``openblas_set_num_threads_local``, OpenBLAS >= 0.3.27) and restores it afterwards. Other
BLAS libraries (MKL, Accelerate) and older OpenBLAS are left as they are.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator
from functools import lru_cache

SETTER = "openblas_set_num_threads_local"


def _loaded_openblas_paths() -> list[str]:
    """Files of the OpenBLAS libraries mapped into this process (Linux: /proc/self/maps)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


@lru_cache(maxsize=8)
def _setters(paths: tuple[str, ...]) -> tuple:
    setters = []
    for path in paths:
        try:
            setter = getattr(ctypes.CDLL(path), SETTER)
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        setters.append(setter)
    return tuple(setters)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, OpenBLAS calls from this thread run on one thread."""
    import numpy  # noqa: F401  (loads numpy's OpenBLAS)
    import scipy.linalg  # noqa: F401  (and scipy's)

    setters = _setters(tuple(_loaded_openblas_paths()))
    previous = [setter(1) for setter in setters]
    try:
        yield
    finally:
        for setter, count in zip(setters, previous):
            setter(count)
