"""``edgesr distill``: a run folder around the :class:`Distiller`, from recipe to results.

The run folder (``runs/distill/<name>/``) holds ``recipe.yaml`` (resolved), ``metrics.jsonl``,
``metrics.png``, ``checkpoint.pt`` (atomic; ``--resume`` continues from it),
``student.safetensors`` (what ``edgesr eval`` and ``edgesr export`` load),
``generators.safetensors`` (data-free calibration for INT8 export) and ``results.json``
(Set5/Set14, evaluated once at the end: student, teacher, bicubic).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.console import Console

from ..data.benchmark import BenchmarkSet
from ..data.splits import holdout, validation_pairs
from ..errors import EdgesrError
from ..evaluate import Score, evaluate
from ..io import write_json
from ..models.predict import torch_predictor
from ..models.vdsr import VDSR
from ..models.zoo import cache_dir, load_model
from ..scores_table import scores_table
from ..train.command import finish_run, launched, recipe_for, resolve_device, train_in_folder
from ..train.distributed import everywhere
from ..train.run_folder import RESULTS_FILE, complete_run, open_run
from .generator import save_generators
from .recipe import DistillRecipe
from .trainer import Distiller

STUDENT_FILE = "student.safetensors"
PLOT_PANELS = [
    ("student KD loss |T(x)-S(x)|", ["kd"]),
    ("generator losses", ["g_adv", "g_rec", "g_cr"]),
    ("sample diversity (collapse -> 0) and pixel std", ["g_diversity", "g_sample_std"]),
    ("validation PSNR (held-out images)", ["val_psnr", "val_bicubic_psnr", "val_teacher_psnr"]),
]


def teacher_scores(teacher: VDSR, sha: str, sets: list[BenchmarkSet], scales: list[int], ssim: bool,
                   device: torch.device) -> list[Score]:
    """The teacher's benchmark scores, cached per weights checksum (they never change)."""
    path = cache_dir() / "scores" / f"{sha}.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    out, missing = [], []
    for bset in sets:
        for s in scales:
            key = f"{bset.folder.resolve()}|x{s}|ssim={ssim}"
            (out.append(Score(**cached[key])) if key in cached else missing.append((bset, s, key)))
    for bset, s, key in missing:
        (score,) = evaluate(torch_predictor(teacher, device), [bset], [s], with_ssim=ssim)
        cached[key] = score.to_dict()
        out.append(score)
    if missing:
        write_json(path, cached)
    order = {(b.name, s): i for i, (b, s) in enumerate((b, s) for b in sets for s in scales)}
    return sorted(out, key=lambda sc: order[(sc.set, sc.scale)])


def _validation_pairs(recipe: DistillRecipe, console: Console) -> dict:
    folder = recipe.validation.data
    if folder and Path(folder).is_dir():
        _, val_paths = holdout(folder, recipe.validation.images)
        return validation_pairs(val_paths, list(recipe.scales), recipe.validation.crop)
    if folder:
        console.print(f"[yellow]validation folder {folder} not found: no validation[/]")
    return {}


def distill(recipe_name: str | None = None, overrides: list[str] | None = None, teacher: str | None = None,
            out: str | Path = "runs/distill", device: str | None = None, resume: str | Path | None = None,
            console: Console | None = None) -> Path:
    """Run (or resume) a distillation, on every process torchrun started; returns the run folder."""
    with launched(console or Console()) as (world, console):
        recipe, run_dir = recipe_for(DistillRecipe, resume, recipe_name, "quick", overrides, {"teacher": teacher},
                                     device, world)
        dev = resolve_device(device or recipe.device, world)
        teacher_net, teacher_meta = load_model(recipe.teacher)
        if teacher_net.width < recipe.student.width:
            raise everywhere(EdgesrError(f"student width {recipe.student.width} exceeds the teacher's "
                                         f"{teacher_net.width}"), world)
        val_pairs = _validation_pairs(recipe, console) if world.main else {}
        trainer = Distiller(recipe, teacher_net, dev, val_pairs, world)
        run_dir, metrics, resumed = open_run(run_dir, out, recipe, trainer)
        console.print(f"[bold]distill[/] {recipe.name} -> {run_dir} on {dev}{world.describe()} "
                      f"({recipe.total_steps} student steps, {recipe.progressive.stages} stage(s)"
                      f"{f', resumed at step {trainer.step}' if resumed else ''})")

        def info(record: dict) -> str:
            kd = f" kd {record['kd']:.4f}" if "kd" in record else ""
            return f"stage {trainer.stage + 1}/{recipe.progressive.stages}{kd}"

        train_in_folder(trainer, run_dir, metrics, resumed, console, PLOT_PANELS, info)
        return finish(run_dir, recipe, trainer, teacher_meta, console) if world.main else run_dir


def finish(run_dir: Path, recipe: DistillRecipe, trainer: Distiller, teacher_meta: dict, console: Console) -> Path:
    """Save the student and generators; evaluate once on the benchmark sets (the teacher too,
    cached); write results."""
    save_generators(trainer.gens, run_dir)
    results, sets = finish_run(trainer, run_dir, recipe.evaluation, list(recipe.scales), STUDENT_FILE,
                               {"recipe": recipe.name, "teacher": recipe.teacher,
                                "teacher_sha256": teacher_meta["sha256"]}, console)
    results["teacher"] = []
    if sets and recipe.evaluation.teacher:
        with console.status("evaluating the teacher (cached after the first time)"):
            t_scores = teacher_scores(trainer.teacher, teacher_meta["sha256"], sets, list(recipe.scales),
                                      recipe.evaluation.ssim, trainer.device)
        results["teacher"] = [s.to_dict() for s in t_scores]
        console.print(scores_table(t_scores, title=f"teacher ({recipe.teacher})"))
    complete_run(run_dir, results)
    console.print(f"student: {run_dir / STUDENT_FILE}   results: {run_dir / RESULTS_FILE}")
    return run_dir
