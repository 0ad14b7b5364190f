"""Run folders, ``runs/<command>/<name>/``: the resolved recipe, the metrics log (JSONL), the
checkpoint, the results and the plot, so that one folder is enough to resume or reproduce a run.

One process at a time works in a run folder: :func:`open_run` takes an exclusive lock on it
(released when the run completes, when its training ends in an error, and in any case when
the process ends, however it ends), then removes what a killed
process left (temporaries of atomic writes, log lines past the checkpoint, a line cut in half),
so that a resumed run's folder ends exactly as an uninterrupted run's would.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ..config import dump_recipe
from ..errors import EdgesrError
from ..io import cannot_write, stale_temporaries, write_json, write_text
from ..untrusted import read_json
from .checkpoint import resume
from .recipe import RunRecipe
from .trainer import Trainer

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; run folders are then not guarded
    fcntl = None  # type: ignore[assignment]

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
RESULTS_FILE = "results.json"
PLOT_FILE = "metrics.png"

#: run folders this process holds the lock of, by resolved path: the open folder descriptor
_locks: dict[Path, int] = {}


def new_run_dir(base: str | Path, name: str) -> Path:
    """A fresh folder ``base/name`` (``name-2``, ``name-3``, ... if taken), made by this
    process alone even when several start at once (``mkdir`` either creates or fails)."""
    base = Path(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(base, exc) from None
    i = 1
    while True:
        candidate = base / (name if i == 1 else f"{name}-{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            i += 1
        except OSError as exc:
            raise cannot_write(candidate, exc) from None


def lock_run(run_dir: Path) -> None:
    """Hold ``run_dir`` for this process (re-entrant); another process holding it is a
    one-line error. The lock is the kernel's (``flock`` on the folder), so it ends with the
    process however that ends: a killed run never leaves a folder locked."""
    key = run_dir.resolve()
    if key in _locks or fcntl is None:
        return
    try:
        fd = os.open(key, os.O_RDONLY)
    except OSError as exc:
        raise EdgesrError(f"cannot open run folder {run_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EdgesrError(f"{run_dir} is in use by another edgesr process: wait for it to end "
                          "(or stop it) before resuming") from None
    _locks[key] = fd


def unlock_run(run_dir: Path) -> None:
    """Let other processes open ``run_dir`` again (nothing if this process does not hold it)."""
    fd = _locks.pop(run_dir.resolve(), None)
    if fd is not None:
        os.close(fd)


def open_run(run_dir: Path | None, out: str | Path, recipe: RunRecipe, trainer: Trainer
             ) -> tuple[Path, MetricsLog | None, bool]:
    """The run folder (a new one under ``out``, with the resolved recipe, when ``run_dir`` is
    None), locked for this process and cleaned of what a killed process left, the trainer
    resumed from its checkpoint when it has one, and the metrics log opened to match:
    ``(run_dir, metrics, resumed)``. Rank 0 makes, locks and cleans the folder; the other ranks
    get its name and the checkpoint's contents, and no metrics log."""

    def prepare() -> tuple[Path, bool]:
        folder = run_dir
        if folder is None:
            folder = new_run_dir(out, recipe.name)
            lock_run(folder)
            try:
                write_text(folder / RECIPE_FILE, dump_recipe(recipe))
            except BaseException:
                unlock_run(folder)
                with contextlib.suppress(OSError):
                    folder.rmdir()  # still empty: no half-made run folder
                raise
        else:
            lock_run(folder)
        try:
            if (folder / RESULTS_FILE).is_file():  # completed while this process was starting
                raise EdgesrError(f"{folder} is already complete (see {RESULTS_FILE})")
            _remove_temporaries(folder)
            return folder, (folder / CHECKPOINT_FILE).is_file()
        except BaseException:
            unlock_run(folder)
            raise

    main = trainer.world.main
    run_dir, resumed = trainer.world.from_main(prepare)
    try:
        if resumed:
            resume(trainer, run_dir / CHECKPOINT_FILE)
        if not main:
            return run_dir, None, resumed
        return run_dir, MetricsLog(run_dir / METRICS_FILE, resume_step=trainer.step if resumed else -1), resumed
    except BaseException:
        if main:
            unlock_run(run_dir)
        raise

def _remove_temporaries(run_dir: Path) -> None:
    """What a process killed in an atomic write left (a 54 MB ``.checkpoint.pt.*.tmp``)."""
    import shutil

    try:
        for tmp in stale_temporaries(run_dir):
            shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else tmp.unlink()
    except OSError as exc:
        raise cannot_write(run_dir, exc) from None


def complete_run(run_dir: Path, results: dict[str, Any]) -> None:
    """Write ``results.json``, which marks the run complete, and release the folder."""
    write_json(run_dir / RESULTS_FILE, results)
    unlock_run(run_dir)


def _record(line: str) -> dict[str, Any] | None:
    """A log line as a record, or None for a line that is not one (cut short by a kill)."""
    try:
        record = read_json(line)
    except ValueError:  # invalid JSON, or nested beyond reason
        return None
    if not isinstance(record, dict) or not isinstance(record.get("step", 0), int):
        return None
    return record


class MetricsLog:
    """Append-only JSONL of per-step metrics (``step`` = steps completed).

    Opened for a run that starts at ``resume_step`` (-1: from scratch), it keeps only the
    records up to that step, and none that is not a whole record: a resumed run's log then
    equals an uninterrupted run's, however the previous process ended.
    """

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if path.is_symlink():  # appending would write wherever it points
            raise EdgesrError(f"{path} is a symbolic link: a run folder's files must be its own")
        if resume_step is not None and path.exists():
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError as exc:
                raise EdgesrError(f"cannot read {path}: {exc.strerror or exc}") from None
            kept = [ln for ln in lines if (r := _record(ln)) is not None and r.get("step", 0) <= resume_step]
            if kept != lines:
                write_text(path, "".join(ln + "\n" for ln in kept))
        try:
            self._f = open(path, "a")
        except OSError as exc:
            raise cannot_write(path, exc) from None

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        try:
            self._f.write(json.dumps(clean) + "\n")
            self._f.flush()
        except OSError as exc:
            raise cannot_write(self.path, exc) from None

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass  # a full disk: the write that failed has already said so

    def read(self) -> list[dict[str, Any]]:
        """The whole records of the log (a line cut by a fault is skipped)."""
        return [r for ln in self.path.read_text(errors="replace").splitlines() if (r := _record(ln)) is not None]
