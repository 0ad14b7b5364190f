"""What the training commands share around the loop: the device, new-or-resume, the progress
display (:mod:`.progress`) and metrics plot (:mod:`.plot`) around :func:`fit`, and the end of a
run (weights saved, evaluated once, results).

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
from ..data.benchmark import check_sets, existing_sets
from ..errors import EdgesrError
from ..evaluate import Row, Score, evaluate_rows
from ..models.formats import save_safetensors
from ..models.srnet import net_for
from ..scores_table import scores_table
from .checkpoint import save_checkpoint
from .distributed import World, join_world
from .loop import Interrupted, fit, stop_on_signals
from .plot import Panel, plot_metrics
from .progress import PlainProgress, duration, progress_bar, status
from .recipe import EvaluationConfig, RunRecipe
from .run_folder import CHECKPOINT_FILE, PLOT_FILE, RECIPE_FILE, RESULTS_FILE, MetricsLog, complete_run, unlock_run
from .trainer import Trainer

R = TypeVar("R", bound=RunRecipe)


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


def announce(console: Console, recipe: RunRecipe, device: torch.device, on_cpu_instead: str) -> None:
    """What a run says once its recipe is valid, before its work: the CPU threads chosen at the
    start (``edgesr.threads``; a recipe error is then one line, not the thread line and the
    error), and for a ``made_for: gpu`` recipe on the CPU, that it is one and what to run
    there instead (``on_cpu_instead``), before an estimate of days says it less kindly."""
    from ..threads import applied

    choice = applied()
    if choice is not None:
        console.print(choice.describe(), highlight=False, markup=False, soft_wrap=True)
    if recipe.made_for == "gpu" and device.type == "cpu":
        console.print(f"note: {recipe.name} is a GPU recipe (its steps are sized for a GPU: on this CPU it would "
                      f"take days); on a CPU, {on_cpu_instead}", style="yellow", highlight=False, markup=False,
                      soft_wrap=True)


def recipe_for(cls: type[R], resume: str | Path | None, name: str | None, default: str,
               overrides: list[str] | None, flags: dict[str, Any], device: str | None,
               world: World | None = None, threads: int | None = None) -> tuple[R, Path | None]:
    """The recipe of a new run (``name`` or ``default``, then ``--set`` overrides, then the
    command's flags, each a recipe key) with ``run_dir`` None, or the saved recipe of the run
    being resumed with its folder. ``device`` and ``threads`` may change on resume (without
    being saved); nothing else may. Its evaluation sets are checked now, not after training.
    Rank 0 reads it and sends it to the other ranks."""
    def read() -> tuple[R, Path | None]:
        recipe, run_dir = _recipe_for(cls, resume, name, default, overrides, flags, device, threads)
        check_sets(recipe.evaluation.sets, getattr(recipe, "scales", ()))  # now, not after training
        return recipe, run_dir

    return (world or World()).from_main(read)


def resume_note(asked: bool, resumed: bool, step: int) -> str:
    """How a run starts, for its first line: ``, resumed at step N``, or why ``--resume``
    starts a folder again from the beginning (stopped before its first checkpoint)."""
    if resumed:
        return f", resumed at step {step}"
    return ", started again from the beginning: it was stopped before its first checkpoint" if asked else ""


def use_run_threads(requested: int | None, recipe: RunRecipe) -> None:
    """Apply the thread rule to a training run: ``--threads``, else the recipe's ``threads``
    (what a resumed run was started with; at most this machine's cores), else the automatic
    rule. :func:`announce` prints the choice once the run's first line is out."""
    import os

    from .. import threads as rule

    if requested is None and recipe.threads:
        choice = rule.ThreadChoice(min(recipe.threads, os.cpu_count() or 1), "the run's recipe key threads")
    else:
        choice = rule.choose(requested)
    rule.apply(choice)


def _recipe_for(cls: type[R], resume: str | Path | None, name: str | None, default: str,
                overrides: list[str] | None, flags: dict[str, Any], device: str | None,
                threads: int | None = None) -> tuple[R, Path | None]:
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
        # its paths were saved resolved; a run folder from before that has them relative to the
        # folder the run started in, most likely the one it is resumed from
        return load_recipe(cls, str(run_dir / RECIPE_FILE), relative_to=Path.cwd()), run_dir
    extra = [*(overrides or []), *(f"{key}={json.dumps(value)}" for key, value in flags.items() if value)]
    if device:
        extra.append(f"device={device}")
    if threads:
        extra.append(f"threads={threads}")
    return load_recipe(cls, name or default, extra), None


def train_in_folder(trainer: Trainer, run_dir: Path, metrics: MetricsLog | None, resumed: bool, console: Console,
                    panels: list[Panel], info: Callable[[dict], str]) -> None:
    """:func:`fit` with a progress bar on a terminal, or plain progress lines elsewhere
    (``info`` turns a record into its text; the validation PSNR is added), stop-on-signal, the
    step-0 validation line of a new run and, however it ends, the metrics plot. A run that ends
    in an error releases its folder; a plot that cannot be written then never hides that error.
    The progress, the log, the plot and the folder's lock are rank 0's; ``metrics`` is None on
    the other ranks."""
    name = trainer.command.removeprefix("edgesr ")
    main = trainer.world.main
    for change in trainer.recipe_changes:
        console.print(f"resuming with a changed recipe: {change}", style="yellow", markup=False, highlight=False,
                      soft_wrap=True)
    def stopped_early(signum: int, _frame) -> None:
        raise Interrupted(signum, "before the first step: nothing to keep yet", name, run_dir,
                          " (it starts again from the beginning)")

    try:
        started = time.perf_counter()
        what = trainer.preparation(resumed)
        with stop_on_signals(stopped_early), status(console, what) if what else nullcontext():
            trainer.begin(resumed, run_dir)
            took = time.perf_counter() - started
            trainer.elapsed += took  # a time budget covers the preparation too
            if main and what and not console.is_terminal:
                console.print(f"prepared in {duration(took)}", markup=False, highlight=False)
            trainer.training_from = (trainer.step, trainer.elapsed)
            if not resumed:
                if metrics and trainer.val_pairs:
                    with status(console, "validating the starting point on the held-out images"):
                        metrics.write({"step": 0, **trainer.reference_scores(), **trainer.validate()})
                # the prepared student (a refit, say) is kept: a stop from now on resumes after it
                save_checkpoint(trainer, run_dir / CHECKPOINT_FILE)
        bar = progress_bar(console) if main and console.is_terminal else nullcontext()
        with stop_on_signals() as stop, bar as progress:
            plain = PlainProgress(console, name, trainer.step) if main and not progress else None
            task = (progress.add_task(name, total=trainer.horizon, completed=trainer.step, info="",
                                      budget_left=budget_left(trainer)) if progress else 0)
            last_text = ""

            def on_step(step: int, record: dict) -> None:
                nonlocal last_text
                val = f" val {record['val_psnr']:.2f} dB" if record.get("val_psnr") is not None else ""
                text = info(record) + val  # empty between log lines: keep the last one shown
                last_text = text or last_text
                left = budget_left(trainer)
                if progress:
                    progress.update(task, completed=step, total=trainer.horizon, budget_left=left,
                                    **({"info": text} if text else {}))
                elif plain:
                    plain.update(step, trainer.horizon, last_text, budget_left=left)

            fit(trainer, run_dir, metrics, stop, on_step if main else None)
            if plain:
                plain.update(trainer.step, trainer.horizon, last_text, force=True, budget_left=budget_left(trainer))
        if main and trainer.step < trainer.horizon:
            console.print(f"{name}: the time budget ({trainer.recipe.budget_minutes:g} min, preparation included) "
                          f"ended the run at step {trainer.step} of {trainer.horizon}",
                          markup=False, highlight=False, soft_wrap=True)
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


def budget_left(trainer: Trainer) -> float | None:
    """Seconds the run's time budget has left (None without one): no estimate shown may exceed
    it, even before the schedule is fitted to the budget and the horizon is still the recipe's."""
    budget = trainer.budget_seconds
    return max(0.0, budget - trainer.elapsed) if budget else None


def training_rate(trainer: Trainer) -> float | None:
    """Training steps per second of training time, the one definition edgesr shows (progress
    line) and records (``results.json``): steps since training (re)started after the run's
    preparation, over the seconds since, validation and checkpoints included. None when this
    process trained no step (a run resumed to redo its final evaluation)."""
    step0, t0 = trainer.training_from
    steps, seconds = trainer.step - step0, trainer.elapsed - t0
    return steps / seconds if steps > 0 and seconds > 0 else None


def _plot(metrics: MetricsLog, run_dir: Path, panels: list[Panel]) -> None:
    records = metrics.read()
    if records:
        plot_metrics(records, run_dir / PLOT_FILE, panels)


def finish_run(trainer: Trainer, run_dir: Path, cfg: EvaluationConfig, scales: list[int], role: str,
               metadata: dict[str, str], console: Console,
               references: dict[str, tuple[torch.nn.Module, str]] | None = None) -> dict[int | None, Path]:
    """End a run: save the trained model as ``<role>.safetensors`` (one network for every
    scale) or ``<role>_x<s>.safetensors`` (one per scale), before the slow evaluation and again
    with the PSNR it measured (which exports carry); evaluate it once on the benchmark sets
    beside the ``references`` (name: ``(model, weights sha256)``, evaluated when
    ``cfg.teacher``; their rows, and bicubic's, are read from the score cache when it has them:
    they never change); write the results (the model's scores under ``role``, each reference's
    under its name), which completes the run folder. Returns the saved files by scale.

    A stop (Ctrl-C, SIGTERM) during the evaluation leaves the saved weights and the last
    checkpoint: ``--resume`` then evaluates again and completes the run."""

    def stopped(signum: int, _frame) -> None:
        raise Interrupted(signum, f"during the final evaluation: the trained {role} is saved",
                          trainer.command.removeprefix("edgesr "), run_dir, " (it evaluates again)")

    try:
        with stop_on_signals(stopped):
            files = _evaluate_and_save(trainer, run_dir, cfg, scales, role, metadata, console, references)
    except BaseException:
        unlock_run(run_dir)  # a stopped or failed evaluation leaves the folder to its resume
        raise
    shown = ", ".join(str(p) for p in files.values())
    console.print(f"{role}: {shown}   results: {run_dir / RESULTS_FILE}", soft_wrap=True)
    return files


def _evaluate_and_save(trainer: Trainer, run_dir: Path, cfg: EvaluationConfig, scales: list[int], role: str,
                       metadata: dict[str, str], console: Console,
                       references: dict[str, tuple[torch.nn.Module, str]] | None) -> dict[int | None, Path]:
    from ..cache import ScoreCache
    from ..models.formats import student_files
    from ..models.predict import benchmark_predictor, input_kind

    val = trainer.validate()
    model = trainer.model.eval()
    files = student_files(run_dir, role, model)

    def save(extra: dict[str, str], measured: dict | None = None) -> None:
        for scale, path in files.items():
            own = [scale] if scale is not None else scales
            meta = {**metadata, **extra, "scales": json.dumps(own)}
            if measured is not None:
                meta["measured_psnr"] = json.dumps({name: {k: v for k, v in by.items() if int(k) in own}
                                                    for name, by in measured.items()})
            save_safetensors(net_for(model, scale) if scale is not None else model, path, meta)

    base = {"steps": str(trainer.step), "val_psnr": json.dumps(val)}
    save(base)
    results = {"run": str(run_dir), "steps": trainer.step, "seconds": round(trainer.elapsed, 1),
               "steps_per_second": None if (rate := training_rate(trainer)) is None else round(rate, 3),
               "device": describe_device(trainer.device), "processes": trainer.world.size,
               "threads": torch.get_num_threads(), "validation": val,
               "files": {str(s or "all"): p.name for s, p in files.items()},
               role: [], **{name: [] for name in references or {}}}
    sets = existing_sets(cfg.sets,
                         lambda folder: console.print(f"evaluation set {folder} not found: skipped (--set "
                                                       "evaluation.sets=[DIR,...] to name others)", style="yellow",
                                                       markup=False, highlight=False, soft_wrap=True))
    if sets:
        rows = {role: Row(lambda: benchmark_predictor(model, trainer.device), input_kind(model))}
        for name, (net, sha) in ((references or {}) if cfg.teacher else {}).items():
            rows[name] = Row(lambda net=net: benchmark_predictor(net, trainer.device), store=ScoreCache(sha))
        names = ", ".join(rows)
        where = f"{', '.join(b.name for b in sets)} x{', x'.join(map(str, scales))}"
        with status(console, f"evaluating the {names} on {where} (cached rows are read, not recomputed)"):
            def done(name: str, score: Score) -> None:
                if not console.is_terminal:
                    console.print(f"  {name} {score.set} x{score.scale}: {score.psnr:.3f} dB "
                                  f"(bicubic {score.bicubic_psnr:.3f})", markup=False, highlight=False)

            scores = evaluate_rows(rows, sets, scales, cfg.ssim, done)
        for name, rows_scores in scores.items():
            console.print(scores_table(rows_scores, title=f"{name} ({run_dir.name})" if name == role else name))
            results[name] = [s.to_dict() for s in rows_scores]
        measured: dict = {}
        for sc in scores[role]:
            measured.setdefault(sc.set, {})[str(sc.scale)] = round(sc.psnr, 4)
        save(base, measured)
    complete_run(run_dir, results)
    return files
