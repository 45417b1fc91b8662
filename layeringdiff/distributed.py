"""Which process of a multi-process job this is, read from the launcher's environment.

Used before any process group exists (Hydra resolves the run folder first): torchrun sets
``RANK`` / ``WORLD_SIZE`` / ``TORCHELASTIC_RUN_ID``; ``srun`` sets ``SLURM_PROCID`` /
``SLURM_NTASKS`` / ``SLURM_JOB_ID`` / ``SLURM_STEP_ID``; Lightning's own launcher passes its child
processes the parent's run folder on the command line (and ``LOCAL_RANK``).
"""

from __future__ import annotations

import os
import socket


def _int(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value.strip().lstrip("-").isdigit() else None


def launcher_rank() -> int:
    """This process's global rank as the launcher set it (0 when not launched as one of several)."""
    for name in ("RANK", "SLURM_PROCID"):
        if (_int("WORLD_SIZE" if name == "RANK" else "SLURM_NTASKS") or 1) > 1 and _int(name) is not None:
            return int(_int(name))
    return _int("LOCAL_RANK") or 0


def job_stamp(default: str) -> str:
    """The run-folder name every process of one distributed job agrees on, else ``default``.

    - torchrun (``WORLD_SIZE`` > 1): ``torchrun-<rdzv id>``; without ``--rdzv-id`` / ``--standalone``
      (id "none") ``torchrun-<host>-<agent pid>``, shared by the processes of one node only.
    - srun with several tasks: ``slurm-<job id>.<step id>`` (each ``srun`` of a job is a step).
    - anything else (one process; Lightning's launcher; Hydra/submitit sweeps): ``default``, the
      time stamp (Lightning hands its child processes the parent's folder).
    """
    if (_int("WORLD_SIZE") or 1) > 1 and os.environ.get("TORCHELASTIC_RUN_ID"):
        run_id = os.environ["TORCHELASTIC_RUN_ID"]
        if run_id == "none":
            run_id = f"{socket.gethostname()}-{os.getppid()}"
        return f"torchrun-{run_id}"
    if (_int("SLURM_NTASKS") or 1) > 1 and os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}.{os.environ.get('SLURM_STEP_ID', '0')}"
    return default


def rank_suffix() -> str:
    """``""`` for rank 0, ``".rank<N>"`` for the others (their log files beside rank 0's)."""
    rank = launcher_rank()
    return f".rank{rank}" if rank else ""
