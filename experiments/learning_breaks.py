"""Break FBDD's core on purpose and show which tests go red (issue 10, item 4).

    .venv/bin/python experiments/learning_breaks.py --jobs 2        # every break, two at a time
    .venv/bin/python experiments/learning_breaks.py --breaks alpha_zero

Each break patches the installed code in a fresh Python process, then runs the learning test
(``tests/test_mini_learning.py``) and the slot-by-slot wiring tests (``tests/test_wiring.py``).
The run ends with one line per break: which tests failed. ``none`` is the unbroken code, every
test must pass there. The breaks:

- ``alpha_zero``     the folded alpha replaced with zeros in the UNet input (training and sampling);
- ``noise_for_xt``   pure noise fed to the UNet instead of the noised latent x_t in the training loss;
- ``swap_in_loss``   the noisy-latent and composite-latent slots swapped in the training loss only;
- ``swap_forward``   the same two slots swapped inside ``FBDD.forward`` (training and sampling alike):
  a consistent channel permutation, which a UNet trained from scratch learns as well as the right
  order. Only the wiring tests can see it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_mini_learning.py", "tests/test_wiring.py"]
BREAKS = ["none", "alpha_zero", "noise_for_xt", "swap_in_loss", "swap_forward"]

# Runs in the child process: patch, then hand over to pytest (the tests import the patched classes).
CHILD = r"""
import sys, torch, pytest
from layeringdiff.networks.fbdd import FBDD
from layeringdiff.training.fbdd_module import FBDDModule
import torch.nn.functional as F

name = sys.argv[1]
forward, v_loss = FBDD.forward, FBDDModule.v_loss
if name == "alpha_zero":
    FBDD.forward = lambda self, x, t, c, a: forward(self, x, t, c, torch.zeros_like(a))
elif name == "swap_forward":
    FBDD.forward = lambda self, x, t, c, a: forward(self, c, t, x, a)
elif name in ("noise_for_xt", "swap_in_loss"):
    def broken(self, target, comp, folded, noise, t):
        sched = self.fbdd.noise_scheduler
        noisy = sched.add_noise(target, noise, t)
        v_target = sched.get_velocity(target, noise, t)
        if name == "noise_for_xt":
            v_pred = self.fbdd(noise, t, comp, folded)
        else:
            v_pred = self.fbdd(comp, t, noisy, folded)
        return F.mse_loss(v_pred.float(), v_target.float())
    FBDDModule.v_loss = broken
sys.exit(pytest.main(sys.argv[2:]))
"""


def run(name: str) -> tuple[list[str], float, str]:
    """Run the tests under one break; return the failed test names, seconds and the printed MSEs."""
    start = time.perf_counter()
    cmd = [sys.executable, "-c", CHILD, name, *TESTS, "-m", "", "-q", "-s", "-p", "no:cacheprovider", "-rf"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout
    failed = sorted(set(re.findall(r"^FAILED (\S+?)(?: - |$)", out, flags=re.M)))
    figures = " | ".join(re.findall(r"^[.F]*(\w+ MSE[^\n]*)", out, flags=re.M))
    return failed, time.perf_counter() - start, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--breaks", default=",".join(BREAKS), help="comma-separated, from: " + ", ".join(BREAKS))
    parser.add_argument("--jobs", type=int, default=1, help="breaks run side by side (one core each)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "experiments"))
    from _machine import machine_line

    print(machine_line())
    names = args.breaks.split(",")
    for name in names:
        if name not in BREAKS:
            raise SystemExit(f"unknown break {name!r}; choose from {', '.join(BREAKS)}")
    with ThreadPoolExecutor(args.jobs) as pool:
        for name, (failed, seconds, figures) in zip(names, pool.map(run, names)):
            print(f"{name:13s} {seconds:6.1f} s  failed: {', '.join(failed) or 'none'}")
            print(f"{'':13s} {figures}", flush=True)


if __name__ == "__main__":
    main()
