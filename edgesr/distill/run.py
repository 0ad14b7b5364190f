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

from ..config import from_dict, load_recipe
from ..data.benchmark import existing_sets
from ..data.splits import holdout, validation_pairs
from ..errors import EdgesrError
from ..evaluate import Score, bicubic_predictor, evaluate, validation_psnr
from ..io import write_json
from ..models.formats import save_safetensors
from ..models.predict import torch_predictor
from ..models.zoo import cache_dir, load_model
from ..runs import (METRICS_FILE, PLOT_FILE, RECIPE_FILE, RESULTS_FILE, open_run, plot_metrics, progress_bar,
                    stop_on_signals)
from .generator import save_generators
from .recipe import DistillRecipe
from .trainer import Distiller

STUDENT_FILE = "student.safetensors"
PLOT_PANELS = [
    ("student KD loss |T(x)-S(x)|", ["kd"]),
    ("generator losses", ["g_adv", "g_rec", "g_cr"]),
    ("sample diversity (collapse -> 0) and pixel std", ["g_diversity", "g_sample_std"]),
    ("validation PSNR (held-out train291 crops)", ["val_psnr", "val_bicubic_psnr", "val_teacher_psnr"]),
]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EdgesrError("device cuda was asked for, but torch sees no CUDA GPU")
    if name != "cpu" and not name.startswith("cuda"):
        raise EdgesrError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def teacher_scores(teacher, sha: str, sets, scales: list[int], ssim: bool, device) -> list[Score]:
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


def _val_reference(recipe: DistillRecipe, pairs: dict, teacher, device) -> dict[str, float]:
    """Bicubic floor and teacher ceiling on the validation crops, logged once for the plot."""
    return {"val_bicubic_psnr": validation_psnr(bicubic_predictor, pairs)["val_psnr"],
            "val_teacher_psnr": validation_psnr(torch_predictor(teacher, device), pairs)["val_psnr"]}


def distill(recipe_name: str | None = None, overrides: list[str] | None = None, teacher: str | None = None,
            out: str | Path = "runs/distill", device: str | None = None, resume: str | Path | None = None,
            console: Console | None = None) -> Path:
    """Run (or resume) a distillation; returns the run folder."""
    console = console or Console()
    if resume:
        run_dir = Path(resume)
        if not (run_dir / RECIPE_FILE).is_file():
            raise EdgesrError(f"{run_dir} is not a distill run folder (no {RECIPE_FILE})")
        if recipe_name or overrides or teacher:
            raise EdgesrError("--resume continues a run with its saved recipe; drop --recipe/--set/--teacher")
        import yaml

        recipe = from_dict(DistillRecipe, yaml.safe_load((run_dir / RECIPE_FILE).read_text()))
        if (run_dir / RESULTS_FILE).is_file():
            raise EdgesrError(f"{run_dir} is already complete (see {RESULTS_FILE})")
    else:
        extra = list(overrides or [])
        if teacher:
            extra.append(f"teacher={teacher}")
        if device:
            extra.append(f"device={device}")
        recipe = load_recipe(DistillRecipe, recipe_name or "quick", extra)
        run_dir = None
    dev = resolve_device(device or recipe.device)
    teacher_net, teacher_meta = load_model(recipe.teacher)
    if teacher_net.width < recipe.student.width:
        raise EdgesrError(f"student width {recipe.student.width} exceeds the teacher's {teacher_net.width}")
    val_pairs = {}
    if recipe.validation.data:
        if Path(recipe.validation.data).is_dir():
            _, val_paths = holdout(recipe.validation.data, recipe.validation.images)
            val_pairs = validation_pairs(val_paths, list(recipe.scales), recipe.validation.crop)
        else:
            console.print(f"[yellow]validation folder {recipe.validation.data} not found: no validation[/]")
    trainer = Distiller(recipe, teacher_net, dev, val_pairs)
    run_dir, metrics, resumed = open_run(run_dir, out, recipe, trainer)
    if val_pairs and not resumed:
        metrics.write({"step": 0, **_val_reference(recipe, val_pairs, teacher_net, dev), **trainer.validate()})
    console.print(f"[bold]distill[/] {recipe.name} -> {run_dir} on {dev} "
                  f"({recipe.total_steps} student steps, {recipe.progressive.stages} stage(s)"
                  f"{', resumed at step %d' % trainer.step if resumed else ''})")
    try:
        with stop_on_signals() as stop, progress_bar(console) as progress:
            task = progress.add_task("distill", total=recipe.total_steps, completed=trainer.step, info="")

            def on_step(step: int, rec: dict) -> None:
                info = f"stage {trainer.stage + 1}/{recipe.progressive.stages}"
                if "kd" in rec:
                    info += f" kd {rec['kd']:.4f}"
                if rec.get("val_psnr") is not None:
                    info += f" val {rec['val_psnr']:.2f} dB"
                progress.update(task, completed=step, info=info)

            trainer.run(run_dir, metrics, stop, on_step)
    finally:
        metrics.close()
        if (run_dir / METRICS_FILE).stat().st_size:
            plot_metrics(metrics.read(), run_dir / PLOT_FILE, PLOT_PANELS)
    return finish(run_dir, recipe, trainer, teacher_net, teacher_meta, dev, console)


def finish(run_dir: Path, recipe: DistillRecipe, trainer: Distiller, teacher_net, teacher_meta: dict,
           device: torch.device, console: Console) -> Path:
    """Save the student and generators; evaluate once on the benchmark sets; write results."""
    from ..report import scores_table

    student = trainer.student.eval()
    val = trainer.validate()
    student_meta = {"recipe": recipe.name, "teacher": recipe.teacher, "teacher_sha256": teacher_meta["sha256"],
                    "steps": str(trainer.step), "val_psnr": json.dumps(val), "scales": json.dumps(list(recipe.scales))}
    save_safetensors(student, run_dir / STUDENT_FILE, student_meta)  # saved before the slow evaluation
    save_generators(trainer.gens, run_dir)
    sets = existing_sets(recipe.evaluation.sets,
                         lambda folder: console.print(f"[yellow]evaluation set {folder} not found: skipped[/]"))
    scales = list(recipe.scales)
    results: dict = {"run": str(run_dir), "steps": trainer.step, "seconds": round(trainer.elapsed, 1),
                     "steps_per_second": round(trainer.step / max(trainer.elapsed, 1e-9), 3),
                     "device": str(device), "validation": val, "student": [], "teacher": []}
    if sets:
        with console.status("evaluating the student on the benchmark sets"):
            student_scores = evaluate(torch_predictor(student, device), sets, scales, recipe.evaluation.ssim)
        results["student"] = [s.to_dict() for s in student_scores]
        measured: dict = {}
        for sc in student_scores:
            measured.setdefault(sc.set, {})[str(sc.scale)] = round(sc.psnr, 4)
        # exported artifacts carry the source's measured PSNR (edgesr.export.source)
        save_safetensors(student, run_dir / STUDENT_FILE, {**student_meta, "measured_psnr": json.dumps(measured)})
        console.print(scores_table(student_scores, title=f"student ({run_dir.name})"))
        if recipe.evaluation.teacher:
            with console.status("evaluating the teacher (cached after the first time)"):
                t_scores = teacher_scores(teacher_net, teacher_meta["sha256"], sets, scales,
                                          recipe.evaluation.ssim, device)
            results["teacher"] = [s.to_dict() for s in t_scores]
            console.print(scores_table(t_scores, title=f"teacher ({recipe.teacher})"))
    write_json(run_dir / RESULTS_FILE, results)
    console.print(f"student: {run_dir / STUDENT_FILE}   results: {run_dir / RESULTS_FILE}")
    return run_dir
