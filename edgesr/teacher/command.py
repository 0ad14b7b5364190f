"""``edgesr teacher train``: a run folder around the :class:`TeacherTrainer`, from recipe to results.

The run folder (``runs/teacher/<name>/``) holds ``recipe.yaml`` (resolved, including the data
folder and scales), ``metrics.jsonl``, ``metrics.png``, ``checkpoint.pt`` (atomic;
``--resume`` continues from it), ``teacher.safetensors`` (float32; loadable by
``edgesr.models.zoo.load_model`` and every ``--model``/``--teacher`` option) and
``results.json`` (Set5/Set14, evaluated once at the end, never used for selection).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ..config import load_recipe
from ..data.splits import holdout, validation_pairs
from ..errors import EdgesrError
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
from ..train.run_folder import RECIPE_FILE, open_run
from .patches import PatchSampler, read_y
from .recipe import TeacherRecipe
from .trainer import TeacherTrainer

TEACHER_FILE = "teacher.safetensors"
PLOT_PANELS = [
    Panel("validation PSNR (dB, held-out images)", "val_psnr", label="teacher",
          lines=(("val_bicubic_psnr", "bicubic floor"),)),
    Panel("training loss", "loss", smooth=True),
    Panel("learning rate", "lr"),
]


def split_images(recipe: TeacherRecipe) -> tuple[list[Path], list[Path]]:
    """``(train, validation)`` image files: the last ``validation.images`` of ``data`` held out,
    or all of ``data`` and the last ones of another ``validation.data``."""
    val_folder = recipe.validation.data or recipe.data
    if Path(val_folder).resolve() == Path(recipe.data).resolve():
        return holdout(recipe.data, recipe.validation.images)
    return holdout(recipe.data, 0)[0], holdout(val_folder, recipe.validation.images)[1]


def train_teacher(data: str | Path | None = None, scales: list[int] | None = None, recipe_name: str | None = None,
                  overrides: list[str] | None = None, out: str | Path = "runs/teacher", device: str | None = None,
                  resume: str | Path | None = None, console: Console | None = None, threads: int | None = None
                  ) -> Path:
    """Train (or resume training) a VDSR teacher, on every process torchrun started; returns the run folder."""
    flags = {"data": str(data) if data else None, "scales": list(scales or [])}
    with launched(console or Console()) as (world, console):
        recipe, run_dir = recipe_for(TeacherRecipe, resume, recipe_name, "teacher", overrides, flags, device, world,
                                     threads)
        use_run_threads(threads, recipe)
        if not recipe.data:
            raise everywhere(EdgesrError("give the training images with --data DIR (e.g. ../shared/data/train291)"),
                             world)
        dev = resolve_device(device or recipe.device, world)
        train_paths, val_paths = split_images(recipe)
        with console.status(f"reading and degrading {len(train_paths)} training images on {dev}"):
            sampler = PatchSampler(read_y(train_paths), recipe.scales, recipe.patches.size, dev,
                                   recipe.patches.augment, recipe.patches.downsizes)
            val_pairs = validation_pairs(val_paths, list(recipe.scales), recipe.validation.crop) if world.main else {}
        if sampler.dropped:
            console.print(f"[yellow]{sampler.dropped} training image(s) smaller than the patch were left out[/]")
        trainer = TeacherTrainer(recipe, sampler, dev, val_pairs, world)
        run_dir, metrics, resumed = open_run(run_dir, out, recipe, trainer)
        budget = f", budget {recipe.budget_minutes:g} min" if recipe.budget_minutes else ""
        console.print(f"[bold]teacher[/] {recipe.name} -> {run_dir} on {dev}{world.describe()}: "
                      f"VDSR {recipe.width}x{recipe.depth}, x{'/'.join(map(str, recipe.scales))}, "
                      f"{sampler.images} training images ({len(train_paths)} files), {len(val_paths)} held out, "
                      f"up to {recipe.steps} steps{budget}{resume_note(resume is not None, resumed, trainer.step)}")
        announce(console, recipe, dev, "distill from a shipped teacher (pytorch-vdsr, edgesr-vdsr), or run "
                 "--recipe teacher-tiny to see teacher training work end to end")

        def info(record: dict) -> str:
            return f"loss {record['loss']:.5f}" if record.get("loss") is not None else ""

        train_in_folder(trainer, run_dir, metrics, resumed, console, PLOT_PANELS, info)
        return finish(run_dir, recipe, trainer, console) if world.main else run_dir


def finish(run_dir: Path, recipe: TeacherRecipe, trainer: TeacherTrainer, console: Console) -> Path:
    """Save the weights; evaluate once on the benchmark sets; write the results."""
    finish_run(trainer, run_dir, recipe.evaluation, list(recipe.scales), Path(TEACHER_FILE).stem,
               {"recipe": recipe.name, "trained_on": Path(recipe.data).name}, console)
    return run_dir


def next_step(run_dir: Path) -> tuple[str, list[str]]:
    """What the run's last line suggests (``what``, edgesr arguments): distilling from the new
    teacher, unless its recipe is a smoke test (``teacher-tiny``), whose teacher the recipe list
    itself calls unusable: then distilling from the shipped one."""
    recipe = load_recipe(TeacherRecipe, str(run_dir / RECIPE_FILE), relative_to=Path.cwd())
    if recipe.smoke_test:
        return (f"distill from the shipped teacher ({recipe.name} is a smoke test: its teacher shows that training "
                "works, it is not one to distill from)", ["distill", "--recipe", "quick"])
    return "distill a student from this teacher", ["distill", "--teacher", str(run_dir / TEACHER_FILE)]
