"""Run folders for long jobs: ``runs/<command>/<name>/`` with the resolved recipe, metrics
(JSONL), atomic checkpoints, results and plots; plus the stop-on-signal handling that makes
``--resume`` possible.
"""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import EdgesrError
from .io import atomic_path, write_text

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
RESULTS_FILE = "results.json"
PLOT_FILE = "metrics.png"


class Diverged(EdgesrError):
    """Training produced non-finite losses or weights; no bad checkpoint was written."""


class Interrupted(EdgesrError):
    """Stopped by a signal after writing a checkpoint."""


def rng_state() -> dict[str, Any]:
    """torch's CPU and CUDA generator states: what makes ``--resume`` continue exactly."""
    import torch

    return {"rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def save_finite_checkpoint(nets: Iterable, state: Callable[[], dict], path: Path, step: int) -> None:
    """Write ``state()`` atomically unless a weight of ``nets`` is non-finite: never save bad state."""
    import torch

    if not all(bool(torch.isfinite(p).all()) for net in nets for p in net.parameters()):
        raise Diverged(f"non-finite weights at step {step}; the previous checkpoint was kept")
    save_checkpoint(state(), path)


def progress_bar(console):
    """The progress bar of long training jobs: description, bar, steps, times, live info."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False)


def new_run_dir(base: str | Path, name: str) -> Path:
    """A fresh folder ``base/name`` (``name-2``, ``name-3``, ... if taken)."""
    base = Path(base)
    candidate, i = base / name, 1
    while candidate.exists():
        i += 1
        candidate = base / f"{name}-{i}"
    candidate.mkdir(parents=True)
    return candidate


def open_run(run_dir: Path | None, out: str | Path, recipe: Any, trainer: Any) -> tuple[Path, "MetricsLog", bool]:
    """The run folder (a new one, with the resolved recipe, when ``run_dir`` is None), the
    trainer resumed from its checkpoint when it has one, and the metrics log opened to match:
    ``(run_dir, metrics, resumed)``. Shared by ``edgesr distill`` and ``edgesr teacher train``."""
    from .config import dump_recipe

    if run_dir is None:
        run_dir = new_run_dir(out, recipe.name)
        (run_dir / RECIPE_FILE).write_text(dump_recipe(recipe))
    resumed = (run_dir / CHECKPOINT_FILE).is_file()
    if resumed:
        trainer.resume(run_dir)
    return run_dir, MetricsLog(run_dir / METRICS_FILE, resume_step=trainer.step if resumed else None), resumed


class MetricsLog:
    """Append-only JSONL of per-step metrics (``step`` = student steps completed); on resume,
    lines past the checkpoint are dropped so that the log of a resumed run equals that of an
    uninterrupted one."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= resume_step]
            write_text(path, "".join(ln + "\n" for ln in kept))
        self._f = open(path, "a")

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self._f.write(json.dumps(clean) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def read(self) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln]


def save_checkpoint(state: dict, path: Path) -> None:
    """``torch.save`` through a temporary file: a kill mid-write leaves the previous checkpoint."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    import torch

    if not path.is_file():
        raise EdgesrError(f"no checkpoint at {path}: nothing to resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise EdgesrError(f"checkpoint {path} is unreadable ({type(exc).__name__})") from None


class StopRequest:
    """Set by SIGINT/SIGTERM; the training loop checks it between steps, checkpoints and exits."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def __call__(self, signum, _frame) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    stop = StopRequest()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def plot_metrics(records: list[dict[str, Any]], path: Path, panels: list[tuple[str, list[str]]]) -> None:
    """One PNG, one panel per ``(title, [metric keys])``; keys absent from the log are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True)
    for ax, (title, keys) in zip(list(getattr(axes, "flat", [axes])), panels):
        for key in keys:
            pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), label=key, marker="." if len(pts) < 50 else None)
        ax.set_title(title, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes_list = list(getattr(axes, "flat", [axes]))
    axes_list[-1].set_xlabel("student step")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
