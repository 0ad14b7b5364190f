"""What the training commands say around a run: the thread line after the recipe is valid, the
GPU-recipe note on a CPU, the recipe of the other command, the next step, steps/s."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console

from edgesr import cli, threads
from edgesr.config import dump_recipe, load_recipe
from edgesr.distill.recipe import DistillRecipe
from edgesr.teacher.command import TEACHER_FILE, next_step
from edgesr.teacher.recipe import TeacherRecipe
from edgesr.train.command import announce, training_rate
from edgesr.train.run_folder import RECIPE_FILE
from tests.cli_helpers import assert_user_error, run_cli


@pytest.mark.parametrize("args", [["distill"], ["teacher", "train", "--data", "nowhere"]])
def test_a_recipe_error_is_one_line_without_the_thread_line(args, tmp_path):
    r = run_cli(*args, "--out", str(tmp_path), "--threads", "1", "--set", "log_every=0")
    assert_user_error(r, "recipe key log_every: must be >= 1, got 0")
    assert r.stdout.strip() == ""


@pytest.mark.parametrize(("args", "said"), [
    (["distill", "--recipe", "teacher-tiny"],
     "teacher-tiny is a teacher recipe: run it with edgesr teacher train --recipe teacher-tiny --data DIR"),
    (["teacher", "train", "--recipe", "quick", "--data", "nowhere"],
     "quick is a distillation recipe: run it with edgesr distill --recipe quick")])
def test_the_other_commands_recipe_names_that_command(args, said, tmp_path):
    r = run_cli(*args, "--out", str(tmp_path), "--threads", "1")
    assert_user_error(r, said)
    assert not any(tmp_path.iterdir())


def test_a_gpu_recipe_on_the_cpu_says_so_once_with_what_to_run_instead(monkeypatch):
    monkeypatch.setattr(threads, "_choice", threads.ThreadChoice(2, "2 cores, 0.0 busy with other processes now"))
    out = io.StringIO()
    console = Console(file=out, width=80)
    announce(console, load_recipe(DistillRecipe, "dfsr"), torch.device("cpu"), "run --recipe quick")
    lines = out.getvalue().splitlines()
    assert lines[0] == "2 CPU threads (2 cores, 0.0 busy with other processes now)"
    assert len(lines) == 2 and lines[1].startswith("note: dfsr is a GPU recipe") and "run --recipe quick" in lines[1]
    for name, device in (("dfsr", "cuda"), ("quick", "cpu")):
        out.truncate(0)
        out.seek(0)
        announce(console, load_recipe(DistillRecipe, name), torch.device(device), "run --recipe quick")
        assert "GPU recipe" not in out.getvalue()


def test_every_shipped_recipe_says_what_it_is_made_for():
    made = {name: load_recipe(cls, name).made_for for cls, names in (
        (DistillRecipe, ("quick", "quick-edge", "paper", "dfsr", "fast-paper", "fast-dfsr")),
        (TeacherRecipe, ("teacher", "teacher-finetune", "teacher-tiny"))) for name in names}
    assert {n for n, m in made.items() if m == "cpu"} == {"quick", "quick-edge", "teacher-tiny"}
    assert {n for n, m in made.items() if m == "gpu"} == set(made) - {"quick", "quick-edge", "teacher-tiny"}


def _run_folder(tmp_path: Path, recipe: str) -> Path:
    run = tmp_path / recipe
    run.mkdir()
    (run / RECIPE_FILE).write_text(dump_recipe(load_recipe(TeacherRecipe, recipe)))
    return run


def test_a_smoke_test_teacher_suggests_the_shipped_teacher(tmp_path):
    what, args = next_step(_run_folder(tmp_path, "teacher-tiny"))
    assert args == ["distill", "--recipe", "quick"] and "smoke test" in what
    run = _run_folder(tmp_path, "teacher")
    assert next_step(run) == ("distill a student from this teacher", ["distill", "--teacher", str(run / TEACHER_FILE)])


def test_closing_line_once_under_torchrun(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=200))
    monkeypatch.setenv("RANK", "1")
    cli.finished(0.0, "export", ["export"])
    assert out.getvalue() == ""
    monkeypatch.setenv("RANK", "0")
    cli.finished(0.0, "export", ["export"])
    assert out.getvalue().startswith("done in ")


def test_steps_per_second_counts_training_only():
    """One definition for the progress line and results.json: training steps over training
    time, the run's preparation (here 40 s before step 100 of a resumed run) left out."""
    trainer = SimpleNamespace(step=300, elapsed=150.0, training_from=(100, 50.0))
    assert training_rate(trainer) == 2.0
    assert training_rate(SimpleNamespace(step=100, elapsed=50.0, training_from=(100, 50.0))) is None


def test_every_output_option_is_out_with_output_as_its_alias():
    """upscale said --output and export --out: both spellings work on every command."""
    import typer

    def commands(group, prefix: str = ""):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, f"{prefix}{name} ")
            else:
                yield prefix + name, cmd

    found = {}
    for name, cmd in commands(typer.main.get_command(cli.app)):
        for param in cmd.params:
            names = set(param.opts)
            if names & {"--out", "--output"}:
                found[name] = names
    assert set(found) == {"distill", "teacher train", "upscale", "export"}
    assert all({"--out", "--output"} <= names for names in found.values())
    assert found["upscale"] == found["export"] == {"-o", "--out", "--output"}


def test_log_lines_are_never_broken(tmp_path):
    """With output redirected, rich assumed 80 columns and broke the longer lines mid-phrase
    (the teacher's header line is about 140 characters)."""
    from tests.teacher_helpers import write_images

    images = write_images(tmp_path / "train", n=10)
    r = run_cli("teacher", "train", "--recipe", "teacher-tiny", "--data", str(images), "--out", str(tmp_path / "runs"),
                "--threads", "1", "--set", "steps=2", "validation.images=1", "evaluation.sets=[]",
                env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    header = next(ln for ln in r.stdout.splitlines() if ln.startswith("teacher teacher-tiny -> "))
    assert len(header) > 80 and header.endswith("up to 2 steps"), r.stdout
    assert r.stdout.splitlines()[-1].startswith("done in ") and "distill --recipe quick" in r.stdout.splitlines()[-1]
