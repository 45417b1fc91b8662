"""experiments/_machine.py: the machine line every benchmark prints and the interleaved timer."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from _machine import cpu_model, interleaved_best, machine_line  # noqa: E402


def test_machine_line_names_cpu_threads_and_load():
    line = machine_line({"torch": 3, "cv2": 1})
    assert cpu_model() in line and "torch 3, cv2 1" in line and "load average" in line
    assert "usable cores" in line and "\n" not in line


def test_interleaved_best_alternates_and_keeps_the_best_rates():
    calls = []

    def fast() -> int:
        calls.append("fast")
        return 10

    def slow() -> int:
        calls.append("slow")
        t0 = time.process_time()
        while time.process_time() - t0 < 0.02:  # burn CPU: the CPU-time rate must see it
            pass
        return 10

    best = interleaved_best({"fast": fast, "slow": slow}, rounds=3)
    assert calls == ["fast", "slow"] * 4  # one warm-up pass each, then A B A B A B
    assert best["fast"][1] > best["slow"][1] and best["slow"][1] <= 10 / 0.02 * 1.01
    assert all(wall > 0 and cpu > 0 for wall, cpu in best.values())


def test_cpu_rate_counts_this_process_only():
    def sleeper() -> int:  # waiting (like a process descheduled by others) costs wall time, not CPU
        time.sleep(0.05)
        return 10

    wall, cpu = interleaved_best({"sleep": sleeper}, rounds=2, warmup=False)["sleep"]
    assert wall <= 10 / 0.05 and cpu > 5 * wall
