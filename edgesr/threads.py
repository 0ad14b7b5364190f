"""How many CPU threads a host command (distill, teacher train, eval, export) computes with.

On a machine that runs anything else, more compute threads than free cores is the slowest
choice there is: torch's OpenMP threads wait for each other at every layer, so one thread
that shares its core with another process stalls them all. The rule, in order:

1. ``--threads N``, when given;
2. ``OMP_NUM_THREADS``, when set (the standard way to pin a job's threads);
3. otherwise the cores free for this process *now*: the cores it may run on
   (``os.sched_getaffinity``) minus the cores other processes keep busy, measured from the CPU
   time those cores spend outside idle (``/proc/stat``) over :data:`SAMPLE_SECONDS`, this
   process's own CPU time taken out; rounded, at least 1.

Why not the load average: it follows the machine with a one-minute time constant, so right
after a test run or an install it still reads ~2 on an idle 2-core machine, and a job started
then ran on 1 thread at half speed for its whole life. CPU time sampled now sees a busy process
while it runs and forgets it as soon as it ends. Where ``/proc/stat`` does not exist (macOS)
the 1-minute load average is the fallback.

It is decided once, when the command starts (before its own work raises the load), printed,
and recorded in ``results.json``. No torch at import time: :func:`apply` imports it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import EdgesrError

#: seconds over which the other processes' CPU use is sampled: /proc/stat counts in 10 ms
#: ticks, so half a second resolves 2% of a core while a command's start barely notices it
SAMPLE_SECONDS = 0.5
PROC_STAT = Path("/proc/stat")
#: /proc/stat columns of a cpu line that are work (user nice system idle iowait irq softirq
#: steal ...): idle and iowait are not; steal is (the hypervisor gave the core to someone else)
_BUSY_COLUMNS, _IDLE_COLUMNS = (0, 1, 2, 5, 6, 7), (3, 4)

#: the clocks :func:`busy_cores` reads (tests replace them, not the ``time`` module's)
_sleep, _own_cpu, _wall = time.sleep, time.process_time, time.monotonic

_choice: ThreadChoice | None = None


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


def physical_cores() -> int:
    """The physical cores among the CPUs this process may run on (hyper-threads of one core
    counted once), from Linux's CPU topology; elsewhere the CPU count. One thread per physical
    core is onnxruntime's own default, which ``edgesr bench`` uses and records."""
    cpus = _cpu_set()
    if not cpus:
        return usable_cores()
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(),
                       topology.joinpath("core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def _cpu_set() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_ticks(cpus: set[int] | None, stat: Path = PROC_STAT) -> tuple[int, int] | None:
    """``(busy, total)`` clock ticks the CPUs in ``cpus`` (all, if None) have spent since boot,
    from ``/proc/stat``; None where it cannot be read."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    seen = False
    for line in lines:
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        ticks = [int(v) for v in values[:8]] + [0] * (8 - len(values[:8]))
        work = sum(ticks[i] for i in _BUSY_COLUMNS)
        busy += work
        total += work + sum(ticks[i] for i in _IDLE_COLUMNS)
        seen = True
    return (busy, total) if seen else None


def busy_cores(seconds: float = SAMPLE_SECONDS, stat: Path = PROC_STAT) -> float | None:
    """How many of this process's cores other processes keep busy right now: their non-idle
    share over ``seconds``, times the cores, less this process's own CPU time meanwhile.
    None where ``/proc/stat`` cannot be read."""
    cpus = _cpu_set()
    before, own_before, wall_before = cpu_ticks(cpus, stat), _own_cpu(), _wall()
    if before is None:
        return None
    _sleep(seconds)
    after, own_after, wall_after = cpu_ticks(cpus, stat), _own_cpu(), _wall()
    if after is None or after[1] <= before[1]:
        return None
    cores = len(cpus) if cpus else usable_cores()
    share = (after[0] - before[0]) / (after[1] - before[1])
    own = (own_after - own_before) / max(wall_after - wall_before, 1e-9)
    return max(0.0, cores * share - own)


def load_average() -> float | None:
    """The 1-minute load average: runnable processes, including those of other users."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def free_threads(cores: int, busy: float | None) -> int:
    """Cores minus the busy ones, rounded half up, within ``[1, cores]``."""
    if busy is None:
        return cores
    return max(1, min(cores, int(cores - busy + 0.5)))


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
    cores = usable_cores()
    busy = busy_cores()
    if busy is not None:
        return ThreadChoice(free_threads(cores, busy),
                            f"{cores} cores, {busy:.1f} busy with other processes now; --threads to change")
    load = load_average()
    if load is None:
        return ThreadChoice(cores, f"{cores} cores, load unknown")
    return ThreadChoice(free_threads(cores, load), f"{cores} cores, load average {load:.1f}; --threads to change")


def apply(choice: ThreadChoice) -> None:
    """Make torch and the onnxruntime sessions edgesr opens later use ``choice.threads``."""
    global _choice
    import torch

    torch.set_num_threads(choice.threads)
    _choice = choice


def applied() -> ThreadChoice | None:
    """The choice :func:`apply` made in this process (None before), for the line a command prints."""
    return _choice


def chosen() -> int:
    """The count :func:`apply` set (for onnxruntime sessions of host commands), else the rule's."""
    return _choice.threads if _choice is not None else choose().threads
