"""Peak memory of one artifact, measured in a process of its own.

Measured in the benchmarking process, a model's peak depended on what ran before it: the first
row paid for importing onnxruntime, and a later row reused pages the allocator kept from an
earlier one (the INT8 row read higher than FP32, and FP32's moved with the order). A fresh
Python process per artifact imports the runtime, notes its resident memory, then loads the
model and runs it once at every benchmarked size; the row's peak is the process's high-water
mark above that level. The same on every OS (Linux ``VmHWM``, elsewhere ``ru_maxrss``), and no
sampling thread competes with the benchmark. No torch here.

    python -m edgesr.bench.memory '{"path": "m.onnx", "threads": 2, "providers": null, "sizes": [256, 512]}'
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .measure import proc_status_kb

#: the library each artifact kind is run by, imported before the baseline (it is not the model)
RUNTIME_LIBRARIES = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".mlpackage": "coremltools"}


def peak_kb() -> int | None:
    """This process's resident high-water mark in KiB: Linux's ``VmHWM``, else ``ru_maxrss``."""
    hwm = proc_status_kb("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


def current_kb() -> int | None:
    """Resident memory now (``VmRSS``); where only the peak is known, the peak so far, which a
    fresh process that has only imported modules is at."""
    rss = proc_status_kb("VmRSS")
    return rss if rss is not None else peak_kb()


def artifact_peak_mb(path: Path, threads: int | None, providers: Sequence[str] | None,
                     sizes: Sequence[int], timeout: float = 600.0) -> tuple[float | None, str]:
    """Peak resident MB of ``path`` loaded and run at ``sizes`` in a fresh process, and a note
    ("" when measured) saying why not where it could not be measured."""
    import edgesr

    spec = {"path": str(path), "threads": threads, "providers": list(providers) if providers else None,
            "sizes": list(sizes)}
    root = str(Path(edgesr.__file__).resolve().parents[1])  # the same edgesr as this process
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        r = subprocess.run([sys.executable, "-m", "edgesr.bench.memory", json.dumps(spec)], capture_output=True,
                           text=True, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"peak memory not measured: {type(exc).__name__}"
    if r.returncode != 0 or not r.stdout.strip():
        last = (r.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return None, f"peak memory not measured: {last}"
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_mb"], ""


def _measure(spec: dict) -> dict:
    from ..runtime import open_upscaler, resolve_artifact

    suffix = resolve_artifact(spec["path"]).suffix.lower()
    if suffix in RUNTIME_LIBRARIES:
        try:
            importlib.import_module(RUNTIME_LIBRARIES[suffix])
        except ImportError:
            pass  # open_upscaler says so in one line
    base = current_kb()
    u = open_upscaler(spec["path"], spec["threads"], spec["providers"])
    for size in spec["sizes"]:
        side = u.input_size(size, size)[0]
        x = np.full((side, side), 0.5, np.float32)
        for _ in range(2):  # the first run allocates; the second shows whether the arena grows
            u.infer(x)
    peak = peak_kb()
    return {"peak_mb": None if peak is None or base is None else (peak - base) / 1024}


if __name__ == "__main__":
    from ..errors import EdgesrError

    try:
        print(json.dumps(_measure(json.loads(sys.argv[1]))))
    except EdgesrError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
