"""``edgesr distill``: a run folder around the :class:`Distiller`, from recipe to results.

The run folder (``runs/distill/<name>/``) holds ``recipe.yaml`` (resolved), ``metrics.jsonl``,
``metrics.png``, ``checkpoint.pt`` (atomic; ``--resume`` continues from it),
``student.safetensors`` (what ``edgesr eval`` and ``edgesr export`` load),
``generators.safetensors`` (the DFSR generators; INT8 calibration of a run that trained on
them, while a pool-only run is calibrated on its priors) and ``results.json``
(Set5/Set14, evaluated once at the end: student, teacher, bicubic).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ..data.splits import holdout, validation_pairs
from ..errors import EdgesrError
from ..models.zoo import load_model
from ..train.command import (
    announce,
    finish_run,
    launched,
    recipe_for,
    resolve_device,
    resume_note,
    train_in_folder,
    use_run_threads,
)
from ..train.distributed import everywhere
from ..train.plot import Panel
from ..train.run_folder import open_run
from .generator import save_generators
from .recipe import DistillRecipe
from .trainer import Distiller

#: the student's file stem: ``student.safetensors``, or ``student_x<s>.safetensors`` per scale
STUDENT = "student"
STUDENT_FILE = f"{STUDENT}.safetensors"
PLOT_PANELS = [
    Panel("validation PSNR (dB, held-out images)", "val_psnr", label="student",
          lines=(("val_teacher_psnr", "teacher ceiling"), ("val_bicubic_psnr", "bicubic floor"))),
    Panel("student KD loss |T(x) - S(x)|", "kd", smooth=True),
    Panel("generator: adversarial loss (-KD on its samples)", "g_adv", smooth=True),
    Panel("generator: reconstruction loss (downscaled T(x) vs its LR)", "g_rec", smooth=True),
    Panel("generator: contrastive loss (CMI)", "g_cr", smooth=True),
    Panel("CMI: instance-discrimination accuracy", "g_cr_acc", smooth=True, lines=(("g_cr_chance", "chance"),)),
    Panel("sample diversity: mean cosine distance of teacher features (0: all alike)", "g_diversity", smooth=True,
          start_line=True),
    Panel("generated LR samples: pixel std", "g_sample_std", smooth=True),
]


def _validation_pairs(recipe: DistillRecipe, console: Console) -> dict:
    folder = recipe.validation.data
    if folder and Path(folder).is_dir():
        _, val_paths = holdout(folder, recipe.validation.images)
        return validation_pairs(val_paths, list(recipe.scales), recipe.validation.crop)
    if folder:
        console.print(f"validation folder {folder} not found: no validation (--set validation.data=DIR to "
                      "give one)", style="yellow", markup=False, highlight=False, soft_wrap=True)
    return {}


def distill(recipe_name: str | None = None, overrides: list[str] | None = None, teacher: str | None = None,
            out: str | Path = "runs/distill", device: str | None = None, resume: str | Path | None = None,
            console: Console | None = None, threads: int | None = None) -> tuple[Path, list[int]]:
    """Run (or resume) a distillation, on every process torchrun started; returns the run
    folder and the scales its student was trained for."""
    with launched(console or Console()) as (world, console):
        recipe, run_dir = recipe_for(DistillRecipe, resume, recipe_name, "quick", overrides, {"teacher": teacher},
                                     device, world, threads)
        use_run_threads(threads, recipe)
        dev = resolve_device(device or recipe.device, world)
        teacher_net, teacher_meta = load_model(recipe.teacher)
        needs_channels = recipe.student.init in ("teacher-prune", "teacher-refit")
        if needs_channels and teacher_net.width < recipe.student.resolved_width:
            raise everywhere(EdgesrError(f"student width {recipe.student.resolved_width} exceeds the teacher's "
                                         f"{teacher_net.width} ({recipe.student.init} keeps teacher channels)"), world)
        val_pairs = _validation_pairs(recipe, console) if world.main else {}
        trainer = Distiller(recipe, teacher_net, dev, val_pairs, world)
        run_dir, metrics, resumed = open_run(run_dir, out, recipe, trainer)
        console.print(f"[bold]distill[/] {recipe.name} -> {run_dir} on {dev}{world.describe()} "
                      f"({recipe.total_steps} student steps, {recipe.progressive.stages} stage(s)"
                      f"{resume_note(resume is not None, resumed, trainer.step)})")
        announce(console, recipe, dev, "run --recipe quick (or quick-edge: LR-space students)")

        def info(record: dict) -> str:
            kd = f" kd {record['kd']:.4f}" if "kd" in record else ""
            return f"stage {trainer.stage + 1}/{recipe.progressive.stages}{kd}"

        train_in_folder(trainer, run_dir, metrics, resumed, console, PLOT_PANELS, info)
        if world.main:
            finish(run_dir, recipe, trainer, teacher_meta, console)
        return run_dir, list(recipe.scales)


def finish(run_dir: Path, recipe: DistillRecipe, trainer: Distiller, teacher_meta: dict, console: Console) -> Path:
    """Save the student and generators; evaluate once on the benchmark sets (the teacher too,
    cached per checksum); write results."""
    save_generators(trainer.gens, run_dir)
    finish_run(trainer, run_dir, recipe.evaluation, list(recipe.scales), STUDENT,
               {"recipe": recipe.name, "teacher": recipe.teacher, "teacher_sha256": teacher_meta["sha256"]}, console,
               {"teacher": (trainer.teacher, teacher_meta["sha256"])})
    return run_dir
