"""``edgesr teacher train``: a run folder around the :class:`TeacherTrainer`, from recipe to results.

The run folder (``runs/teacher/<name>/``) holds ``recipe.yaml`` (resolved, including the data
folder and scales), ``metrics.jsonl``, ``metrics.png``, ``checkpoint.pt`` (atomic;
``--resume`` continues from it), ``teacher.safetensors`` (float32; loadable by
``edgesr.models.zoo.load_model`` and every ``--model``/``--teacher`` option) and
``results.json`` (Set5/Set14, evaluated once at the end, never used for selection).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from rich.console import Console

from ..config import from_dict, load_recipe
from ..data.benchmark import existing_sets
from ..data.splits import holdout, validation_pairs
from ..distill.run import resolve_device
from ..errors import EdgesrError
from ..evaluate import bicubic_predictor, evaluate, validation_psnr
from ..io import write_json
from ..models.formats import save_safetensors
from ..models.predict import torch_predictor
from ..runs import (METRICS_FILE, PLOT_FILE, RECIPE_FILE, RESULTS_FILE, open_run, plot_metrics, progress_bar,
                    stop_on_signals)
from .patches import PatchSampler, read_y
from .recipe import TeacherRecipe
from .trainer import TeacherTrainer

TEACHER_FILE = "teacher.safetensors"
PLOT_PANELS = [
    ("training loss", ["loss"]),
    ("learning rate", ["lr"]),
    ("validation PSNR (held-out crops of the training folder)", ["val_psnr", "val_bicubic_psnr"]),
]


def _recipe(data: str | Path | None, scales: list[int] | None, recipe_name: str | None, overrides: list[str] | None,
            device: str | None, resume: str | Path | None) -> tuple[TeacherRecipe, Path | None]:
    """The recipe of a new run (file + flags), or the saved one of the run being resumed."""
    if resume:
        run_dir = Path(resume)
        if not (run_dir / RECIPE_FILE).is_file():
            raise EdgesrError(f"{run_dir} is not a teacher run folder (no {RECIPE_FILE})")
        if recipe_name or overrides or data or scales:
            raise EdgesrError("--resume continues a run with its saved recipe; drop --recipe/--set/--data/--scales")
        if (run_dir / RESULTS_FILE).is_file():
            raise EdgesrError(f"{run_dir} is already complete (see {RESULTS_FILE})")
        return from_dict(TeacherRecipe, yaml.safe_load((run_dir / RECIPE_FILE).read_text())), run_dir
    extra = list(overrides or [])
    if data:
        extra.append(f"data={json.dumps(str(data))}")
    if scales:
        extra.append(f"scales={json.dumps(list(scales))}")
    if device:
        extra.append(f"device={device}")
    recipe = load_recipe(TeacherRecipe, recipe_name or "teacher", extra)
    if not recipe.data:
        raise EdgesrError("give the training images with --data DIR (e.g. ../shared/data/train291)")
    return recipe, None


def train_teacher(data: str | Path | None = None, scales: list[int] | None = None, recipe_name: str | None = None,
                  overrides: list[str] | None = None, out: str | Path = "runs/teacher", device: str | None = None,
                  resume: str | Path | None = None, console: Console | None = None) -> Path:
    """Train (or resume training) a VDSR teacher; returns the run folder."""
    console = console or Console()
    recipe, run_dir = _recipe(data, scales, recipe_name, overrides, device, resume)
    dev = resolve_device(device or recipe.device)
    train_paths, val_paths = holdout(recipe.data, recipe.validation.images)
    with console.status(f"reading and degrading {len(train_paths)} training images on {dev}"):
        sampler = PatchSampler(read_y(train_paths), recipe.scales, recipe.patches.size, dev,
                               recipe.patches.augment, recipe.patches.downsizes)
        val_pairs = validation_pairs(val_paths, list(recipe.scales), recipe.validation.crop)
    if sampler.dropped:
        console.print(f"[yellow]{sampler.dropped} training image(s) smaller than the patch were left out[/]")
    trainer = TeacherTrainer(recipe, sampler, dev, val_pairs)
    run_dir, metrics, resumed = open_run(run_dir, out, recipe, trainer)
    if not resumed:
        metrics.write({"step": 0, "val_bicubic_psnr": validation_psnr(bicubic_predictor, val_pairs)["val_psnr"],
                       **trainer.validate()})
    budget = f", budget {recipe.budget_minutes:g} min" if recipe.budget_minutes else ""
    console.print(f"[bold]teacher[/] {recipe.name} -> {run_dir} on {dev}: VDSR {recipe.width}x{recipe.depth}, "
                  f"x{'/'.join(map(str, recipe.scales))}, {sampler.images} training images "
                  f"({len(train_paths)} files), {len(val_paths)} held out, up to {recipe.steps} steps{budget}"
                  f"{', resumed at step %d' % trainer.step if resumed else ''}")
    try:
        with stop_on_signals() as stop, progress_bar(console) as progress:
            task = progress.add_task("teacher", total=trainer.horizon, completed=trainer.step, info="")

            def on_step(step: int, rec: dict) -> None:
                info = f"loss {rec['loss']:.5f}" if rec.get("loss") is not None else ""
                if rec.get("val_psnr") is not None:
                    info += f" val {rec['val_psnr']:.2f} dB"
                if info:
                    progress.update(task, completed=step, total=trainer.horizon, info=info)
                else:
                    progress.update(task, completed=step, total=trainer.horizon)

            trainer.run(run_dir, metrics, stop, on_step)
    finally:
        metrics.close()
        if (run_dir / METRICS_FILE).stat().st_size:
            plot_metrics(metrics.read(), run_dir / PLOT_FILE, PLOT_PANELS)
    return finish(run_dir, recipe, trainer, dev, console)


def finish(run_dir: Path, recipe: TeacherRecipe, trainer: TeacherTrainer, device: torch.device,
           console: Console) -> Path:
    """Save the weights; evaluate once on the benchmark sets; write the results."""
    from ..report import scores_table

    val = trainer.validate()
    model = trainer.model.eval()
    save_safetensors(model, run_dir / TEACHER_FILE, {
        "recipe": recipe.name, "trained_on": Path(recipe.data).name, "scales": json.dumps(list(recipe.scales)),
        "steps": str(trainer.step), "val_psnr": json.dumps(val)})
    sets = existing_sets(recipe.evaluation.sets,
                         lambda folder: console.print(f"[yellow]evaluation set {folder} not found: skipped[/]"))
    results: dict = {"run": str(run_dir), "steps": trainer.step, "seconds": round(trainer.elapsed, 1),
                     "steps_per_second": round(trainer.step / max(trainer.elapsed, 1e-9), 3),
                     "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
                     "validation": val, "teacher": []}
    if sets:
        with console.status("evaluating on the benchmark sets"):
            scores = evaluate(torch_predictor(model, device), sets, list(recipe.scales), recipe.evaluation.ssim)
        results["teacher"] = [s.to_dict() for s in scores]
        console.print(scores_table(scores, title=f"teacher ({run_dir.name})"))
    write_json(run_dir / RESULTS_FILE, results)
    console.print(f"teacher: {run_dir / TEACHER_FILE}   results: {run_dir / RESULTS_FILE}")
    return run_dir
