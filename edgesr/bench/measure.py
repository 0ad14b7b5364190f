"""Timing and memory measurement that a device without extra packages can do.

Peak memory uses Linux's resettable high-water mark (``/proc/self/clear_refs`` then
``VmHWM``), so each model gets its own peak without a sampling thread stealing a core from
the benchmark. Elsewhere (macOS) only the process-lifetime peak exists; rows then say so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STATUS = Path("/proc/self/status")


@dataclass
class Latency:
    """Latency of one call on a ``size x size`` output, over ``runs`` timed calls."""

    size: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    #: output megapixels per second at the median latency
    mpix_per_s: float


def summarize(size: int, seconds: list[float]) -> Latency:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return Latency(size, len(ms), p50, p90, p99, float(ms.mean()), size * size / 1e6 / (p50 / 1e3))


def time_calls(fn: Callable[[], object], warmup: int, runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` calls after ``warmup`` untimed ones."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got {runs}, {warmup}")
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def proc_status_kb(key: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak resident memory above the level at entry, in MB (``None`` where unmeasurable).

    ``resettable`` is False where the peak can only be the process's lifetime peak.
    """

    def __init__(self) -> None:
        self.base_kb: int | None = None
        self.peak_mb: float | None = None
        self.resettable = False

    def __enter__(self) -> PeakMemory:
        self.base_kb = proc_status_kb("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = self.base_kb is not None
        except OSError:
            self.resettable = False
        return self

    def __exit__(self, *exc) -> None:
        hwm = proc_status_kb("VmHWM") if self.resettable else None
        if hwm is not None and self.base_kb is not None:
            self.peak_mb = (hwm - self.base_kb) / 1024
            return
        try:
            import resource  # POSIX only
        except ImportError:
            return
        # ru_maxrss (bytes on macOS, KiB elsewhere) is the whole process's peak
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mb = peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
