"""What the training commands share around the loop: the device, new-or-resume, the progress
bar, the metrics plot, and the end of a run (weights saved, evaluated once, results).

``edgesr distill`` and ``edgesr teacher train`` are each a recipe, a :class:`Trainer` and a
``finish``; everything else is here, so the two commands cannot drift apart.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import torch
from rich.console import Console

from ..config import load_recipe
from ..data.benchmark import BenchmarkSet, existing_sets
from ..errors import EdgesrError
from ..evaluate import evaluate
from ..models.formats import save_safetensors
from ..models.predict import torch_predictor
from ..scores_table import scores_table
from .distributed import World, join_world
from .loop import fit, stop_on_signals
from .recipe import EvaluationConfig, RunRecipe
from .run_folder import PLOT_FILE, RECIPE_FILE, RESULTS_FILE, MetricsLog, unlock_run
from .trainer import Trainer

R = TypeVar("R", bound=RunRecipe)
#: ``(title, [metric keys])`` per panel of ``metrics.png``
Panels = list[tuple[str, list[str]]]


@contextmanager
def launched(console: Console) -> Iterator[tuple[World, Console]]:
    """The processes this command trains with (torchrun's, or this one alone) and the console
    to report on: rank 0's; the other ranks print nothing but their own errors."""
    with join_world() as world:
        yield world, console if world.main else Console(quiet=True)


def resolve_device(name: str, world: World | None = None) -> torch.device:
    """``auto`` means CUDA when torch sees a GPU; asking for CUDA without one is a user error.
    Under torchrun each process takes the GPU of its ``LOCAL_RANK``."""
    if world and world.active and name in ("auto", "cuda") and torch.cuda.is_available():
        if world.local_rank >= torch.cuda.device_count():
            raise EdgesrError(f"LOCAL_RANK {world.local_rank} but torch sees {torch.cuda.device_count()} GPU(s): "
                              "start at most one process per GPU (torchrun --nproc-per-node)")
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    if world and world.active and name.startswith("cuda:"):
        raise EdgesrError(f"device {name}: under torchrun each process uses the GPU of its LOCAL_RANK; "
                          "give --device cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EdgesrError(f"device {name} was asked for, but torch sees no CUDA GPU")
    if name != "cpu" and not name.startswith("cuda"):
        raise EdgesrError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """The device as results files name it: ``cpu``, or ``cuda (NVIDIA H200)``."""
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def recipe_for(cls: type[R], resume: str | Path | None, name: str | None, default: str,
               overrides: list[str] | None, flags: dict[str, Any], device: str | None,
               world: World | None = None) -> tuple[R, Path | None]:
    """The recipe of a new run (``name`` or ``default``, then ``--set`` overrides, then the
    command's flags, each a recipe key) with ``run_dir`` None, or the saved recipe of the run
    being resumed with its folder. ``device`` may change on resume; nothing else may. Rank 0
    reads it and sends it to the other ranks."""
    return (world or World()).from_main(lambda: _recipe_for(cls, resume, name, default, overrides, flags, device))


def _recipe_for(cls: type[R], resume: str | Path | None, name: str | None, default: str,
                overrides: list[str] | None, flags: dict[str, Any], device: str | None) -> tuple[R, Path | None]:
    if resume:
        run_dir = Path(resume)
        if not (run_dir / RECIPE_FILE).is_file():
            raise EdgesrError(f"{run_dir} is not a run folder (no {RECIPE_FILE})")
        given = (["--recipe"] if name else []) + (["--set"] if overrides else []) + [
            f"--{key}" for key, value in flags.items() if value]
        if given:
            raise EdgesrError(f"--resume continues a run with its saved recipe; drop {'/'.join(given)}")
        if (run_dir / RESULTS_FILE).is_file():
            raise EdgesrError(f"{run_dir} is already complete (see {RESULTS_FILE})")
        return load_recipe(cls, str(run_dir / RECIPE_FILE)), run_dir
    extra = [*(overrides or []), *(f"{key}={json.dumps(value)}" for key, value in flags.items() if value)]
    if device:
        extra.append(f"device={device}")
    return load_recipe(cls, name or default, extra), None


def progress_bar(console: Console):
    """The progress bar of long training jobs: description, bar, steps, times, live info."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False)


def plot_metrics(records: list[dict[str, Any]], path: Path, panels: Panels) -> None:
    """One PNG, one panel per ``(title, [metric keys])``; keys absent from the log are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True)
    axes = list(getattr(axes, "flat", [axes]))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), label=key, marker="." if len(pts) < 50 else None)
        ax.set_title(title, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)


def train_in_folder(trainer: Trainer, run_dir: Path, metrics: MetricsLog | None, resumed: bool, console: Console,
                    panels: Panels, info: Callable[[dict], str]) -> None:
    """:func:`fit` with a progress bar (``info`` turns a record into its text; the validation
    PSNR is added), stop-on-signal, the step-0 validation line of a new run and, however it
    ends, the metrics plot. A run that ends in an error releases its folder; a plot that
    cannot be written then never hides that error. The bar, the log, the plot and the folder's
    lock are rank 0's; ``metrics`` is None on the other ranks."""
    main = trainer.world.main
    for change in trainer.recipe_changes:
        console.print(f"[yellow]resuming with a changed recipe: {change}[/]")
    try:
        started = time.perf_counter()
        with console.status("preparing the run"):
            trainer.begin(resumed)
        trainer.elapsed += time.perf_counter() - started  # a time budget covers the preparation too
        if metrics and trainer.val_pairs and not resumed:
            metrics.write({"step": 0, **trainer.reference_scores(), **trainer.validate()})
        with stop_on_signals() as stop, (progress_bar(console) if main else nullcontext()) as progress:
            task = progress.add_task(trainer.command.removeprefix("edgesr "), total=trainer.horizon,
                                     completed=trainer.step, info="") if main else None

            def on_step(step: int, record: dict) -> None:
                val = f" val {record['val_psnr']:.2f} dB" if record.get("val_psnr") is not None else ""
                text = info(record) + val  # empty between log lines: keep the last one shown
                progress.update(task, completed=step, total=trainer.horizon, **({"info": text} if text else {}))

            fit(trainer, run_dir, metrics, stop, on_step if main else None)
    except BaseException:
        if metrics:
            metrics.close()
            with contextlib.suppress(Exception):  # the error in flight is the one to report
                _plot(metrics, run_dir, panels)
            unlock_run(run_dir)
        raise
    if metrics:
        metrics.close()
        _plot(metrics, run_dir, panels)


def _plot(metrics: MetricsLog, run_dir: Path, panels: Panels) -> None:
    records = metrics.read()
    if records:
        plot_metrics(records, run_dir / PLOT_FILE, panels)


def finish_run(trainer: Trainer, run_dir: Path, cfg: EvaluationConfig, scales: list[int], weights: str,
               metadata: dict[str, str], console: Console) -> tuple[dict, list[BenchmarkSet]]:
    """Save the trained model as ``weights`` (before the slow evaluation, then again with the
    PSNR it measured, which exports carry), evaluate it once on the benchmark sets, and return
    the results (not yet written; the model's scores under its file's stem) and the sets."""
    val = trainer.validate()
    model = trainer.model.eval()
    role = Path(weights).stem
    meta = {**metadata, "steps": str(trainer.step), "val_psnr": json.dumps(val), "scales": json.dumps(scales)}
    save_safetensors(model, run_dir / weights, meta)
    results = {"run": str(run_dir), "steps": trainer.step, "seconds": round(trainer.elapsed, 1),
               "steps_per_second": round(trainer.step / max(trainer.elapsed, 1e-9), 3),
               "device": describe_device(trainer.device), "processes": trainer.world.size, "validation": val,
               role: []}
    sets = existing_sets(cfg.sets,
                         lambda folder: console.print(f"[yellow]evaluation set {folder} not found: skipped[/]"))
    if sets:
        with console.status(f"evaluating the {role} on the benchmark sets"):
            scores = evaluate(torch_predictor(model, trainer.device), sets, scales, cfg.ssim)
        console.print(scores_table(scores, title=f"{role} ({run_dir.name})"))
        results[role] = [s.to_dict() for s in scores]
        measured: dict = {}
        for sc in scores:
            measured.setdefault(sc.set, {})[str(sc.scale)] = round(sc.psnr, 4)
        save_safetensors(model, run_dir / weights, {**meta, "measured_psnr": json.dumps(measured)})
    return results, sets
