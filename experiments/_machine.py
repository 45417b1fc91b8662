"""What every benchmark prints beside its figures, and the interleaved best-of-N timer they share.

A figure from a shared or different machine is only readable with the machine next to it: the CPU
model, the threads the benchmark used, and the load average (other processes' work) at the time.
Ratios against a baseline timed in the same run, passes alternating, hold across machines.

    from _machine import machine_line, interleaved_best
    print(machine_line())
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable


def cpu_model() -> str:
    """The CPU model name (Linux ``/proc/cpuinfo``; else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line(threads: dict[str, int | str] | None = None) -> str:
    """One line: CPU model, cores, the threads this benchmark uses, load average (1, 5, 15 min)."""
    if threads is None:
        threads = {}
        try:
            import torch

            threads["torch"] = torch.get_num_threads()
        except ImportError:
            pass
    used = ", ".join(f"{k} {v}" for k, v in threads.items()) or "n/a"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"machine: {cpu_model()}; {cores} usable cores; threads: {used}; load average {load_average()}"


def interleaved_best(
    passes: dict[str, Callable[[], int]], rounds: int, warmup: bool = True
) -> dict[str, tuple[float, float]]:
    """Best-of-``rounds`` (items per wall second, items per CPU second) of each pass.

    Each ``passes[name]()`` does one pass and returns how many items it handled. Rounds alternate
    between the passes (A B A B ...), so a change in the machine's load hits all of them alike;
    the CPU rate counts this process's CPU time (``time.process_time``), which other processes do
    not inflate.
    """
    if warmup:
        for fn in passes.values():
            fn()
    best = {name: (0.0, 0.0) for name in passes}
    for _ in range(rounds):
        for name, fn in passes.items():
            w0, c0 = time.perf_counter(), time.process_time()
            n = fn()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            old = best[name]
            best[name] = (max(old[0], n / max(wall, 1e-9)), max(old[1], n / max(cpu, 1e-9)))
    return best
