"""Run folders, ``runs/<command>/<name>/``: the resolved recipe, the metrics log (JSONL), the
checkpoint, the results and the plot, so that one folder is enough to resume or reproduce a run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..config import dump_recipe
from ..io import write_text
from .checkpoint import resume
from .recipe import RunRecipe
from .trainer import Trainer

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
RESULTS_FILE = "results.json"
PLOT_FILE = "metrics.png"


def new_run_dir(base: str | Path, name: str) -> Path:
    """A fresh folder ``base/name`` (``name-2``, ``name-3``, ... if taken)."""
    base = Path(base)
    candidate, i = base / name, 1
    while candidate.exists():
        i += 1
        candidate = base / f"{name}-{i}"
    candidate.mkdir(parents=True)
    return candidate


def open_run(run_dir: Path | None, out: str | Path, recipe: RunRecipe, trainer: Trainer
             ) -> tuple[Path, MetricsLog | None, bool]:
    """The run folder (a new one under ``out``, with the resolved recipe, when ``run_dir`` is
    None), the trainer resumed from its checkpoint when it has one, and the metrics log opened
    to match: ``(run_dir, metrics, resumed)``. Rank 0 makes and reads the folder; the other
    ranks get its name and the checkpoint's contents, and no metrics log."""

    def prepare() -> tuple[Path, bool]:
        folder = run_dir
        if folder is None:
            folder = new_run_dir(out, recipe.name)
            write_text(folder / RECIPE_FILE, dump_recipe(recipe))
        return folder, (folder / CHECKPOINT_FILE).is_file()

    run_dir, resumed = trainer.world.from_main(prepare)
    if resumed:
        resume(trainer, run_dir / CHECKPOINT_FILE)
    if not trainer.world.main:
        return run_dir, None, resumed
    return run_dir, MetricsLog(run_dir / METRICS_FILE, resume_step=trainer.step if resumed else None), resumed


class MetricsLog:
    """Append-only JSONL of per-step metrics (``step`` = steps completed); on resume, lines past
    the checkpoint are dropped so that the log of a resumed run equals that of an uninterrupted one."""

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
