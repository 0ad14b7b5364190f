"""How many CPU threads a host command (distill, teacher train, eval, export) computes with.

On a machine that runs anything else, more compute threads than free cores is the slowest
choice there is: torch's OpenMP threads wait for each other at every layer, so one thread
that shares its core with another process stalls them all. The rule, in order:

1. ``--threads N``, when given;
2. ``OMP_NUM_THREADS``, when set (the standard way to pin a job's threads);
3. otherwise the cores free for this process: the cores it may run on
   (``os.sched_getaffinity``) minus the 1-minute load average (``os.getloadavg``), rounded,
   at least 1.

It is decided once, when the command starts (before its own work raises the load), printed,
and recorded in ``results.json``. No torch at import time: :func:`apply` imports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import EdgesrError

_chosen: int | None = None


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    #: why this number, for the line the command prints
    reason: str

    def describe(self) -> str:
        return f"{self.threads} CPU thread{'s' if self.threads != 1 else ''} ({self.reason})"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. a container's CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average: runnable processes, including those of other users."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def free_threads(cores: int, load: float | None) -> int:
    """Cores minus load, rounded, within ``[1, cores]``."""
    if load is None:
        return cores
    return max(1, min(cores, round(cores - load)))


def check_requested(requested: int | None) -> None:
    """``--threads N`` of any command (host or device): from 1 to the machine's cores
    (``os.cpu_count()``). More compute threads than cores only wait for each other: 1000
    onnxruntime threads took 55 s for what 1 did in 0.8 s."""
    if requested is None:
        return
    cores = os.cpu_count() or 1
    if not 1 <= requested <= cores:
        raise EdgesrError(f"--threads must be from 1 to {cores} (the cores of this machine), got {requested}")


def choose(requested: int | None = None) -> ThreadChoice:
    """The thread count by the rule above; ``requested`` is the ``--threads`` flag."""
    if requested is not None:
        check_requested(requested)
        return ThreadChoice(requested, "--threads")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise EdgesrError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}")
        return ThreadChoice(n, "OMP_NUM_THREADS")
    cores, load = usable_cores(), load_average()
    if load is None:
        return ThreadChoice(cores, f"{cores} cores, load unknown")
    return ThreadChoice(free_threads(cores, load), f"{cores} cores, load average {load:.1f}; --threads to change")


def apply(choice: ThreadChoice) -> None:
    """Make torch and the onnxruntime sessions edgesr opens later use ``choice.threads``."""
    global _chosen
    import torch

    torch.set_num_threads(choice.threads)
    _chosen = choice.threads


def chosen() -> int:
    """The count :func:`apply` set (for onnxruntime sessions of host commands), else the rule's."""
    return _chosen if _chosen is not None else choose().threads
