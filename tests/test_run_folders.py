"""Run folders across versions and from strangers: what both training commands share.

* folders written by the code before the training layer resume and end with the weights that
  code reached uninterrupted;
* a checkpoint carrying a pickle payload is refused without running it;
* every run-level recipe key out of its declared range is the same one-line error on both
  commands, before any folder is made.
"""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest
import torch
from rich.console import Console

from edgesr.distill.command import distill
from edgesr.errors import EdgesrError
from edgesr.models.formats import read_weights, save_safetensors
from edgesr.teacher.command import train_teacher
from edgesr.train.recipe import RunRecipe
from tests.cli_helpers import ROOT, assert_user_error, run_cli
from tests.distill_helpers import tiny_teacher
from tests.recipe_keys import numeric_keys
from tests.teacher_helpers import write_images

OLD_RUNS = ROOT / "tests" / "data" / "old_runs"
#: checkpoint keys of the code that wrote OLD_RUNS: today's checkpoints must keep them
OLD_KEYS = {
    "distill": {"step", "stage", "scale", "elapsed", "student", "student_blocks", "student_opt", "gens", "gen_opts",
                "head", "head_opt", "banks", "z_pool", "log", "rng", "cuda_rng"},
    "teacher": {"step", "horizon", "elapsed", "model", "opt", "log", "rng", "cuda_rng"},
}


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


@pytest.fixture
def old_run(tmp_path, monkeypatch):
    """``(kind, run folder)``: a copy of an old run folder, in a working folder holding what its
    recipe names (relative paths)."""

    def make(kind: str):
        run = tmp_path / kind
        shutil.copytree(OLD_RUNS / kind, run)
        if kind == "distill":
            save_safetensors(tiny_teacher(123), tmp_path / "teacher.safetensors")
        else:
            write_images(tmp_path / "images")
        monkeypatch.chdir(tmp_path)
        return run

    return make


@pytest.mark.parametrize("kind", ["distill", "teacher"])
def test_old_run_folders_resume_to_the_weights_of_an_uninterrupted_run(old_run, kind):
    run = old_run(kind)
    assert set(torch.load(run / "checkpoint.pt", weights_only=True)) == OLD_KEYS[kind]
    if kind == "distill":
        distill(resume=run, console=quiet())
        got, want, steps = "student.safetensors", "expected_student.safetensors", 10
    else:
        train_teacher(resume=run, console=quiet())
        got, want, steps = "teacher.safetensors", "expected_model.safetensors", 12
    assert json.loads((run / "results.json").read_text())["steps"] == steps
    mine, theirs = read_weights(run / got)[0], read_weights(run / want)[0]
    assert mine.keys() == theirs.keys()
    for k in mine:  # identical on the machine that wrote them; another CPU may round differently
        torch.testing.assert_close(mine[k], theirs[k], rtol=0, atol=1e-6, msg=k)
    logged = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in logged if s] == list(range(1, steps + 1))  # log_every 1: each step once
    assert set(torch.load(run / "checkpoint.pt", weights_only=True)) >= OLD_KEYS[kind]  # may add, never drop


class _Payload:
    """Unpickling this runs ``touch <marker>``: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("kind, command", [("distill", ["distill"]), ("teacher", ["teacher", "train"])])
def test_a_pickle_payload_in_a_checkpoint_never_runs(old_run, tmp_path, kind, command):
    run = old_run(kind)
    marker = tmp_path / "payload-ran"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**state, "step": _Payload(marker)}, run / "checkpoint.pt")
    torch.load(run / "checkpoint.pt", weights_only=False)  # the payload is live: an unsafe reader runs it
    assert marker.exists()
    marker.unlink()
    r = run_cli(*command, "--resume", str(run), cwd=tmp_path)
    assert_user_error(r, "holds objects other than tensors and plain data: refused, nothing in it was run")
    assert not marker.exists()
    assert not (run / "results.json").exists()


def _out_of_range() -> list[tuple[str, object]]:
    """One bad value per run-level key: just outside the range its type declares, and the
    run-level checks that are not ranges."""
    cases: list[tuple[str, object]] = [("device", "tpu"), ("name", "../elsewhere"), ("bf16", "yes")]
    for key, rng in numeric_keys(RunRecipe).items():
        assert rng is not None and rng.low is not None, key
        cases.append((key, rng.low if rng.low_open else rng.low - 1))
    return cases


@pytest.mark.parametrize("key, value", _out_of_range())
def test_run_level_keys_are_checked_alike_before_any_folder(tmp_path, key, value):
    images = write_images(tmp_path / "images", n=3)
    override = [f"{key}={json.dumps(value)}"]
    errors = []
    for run in (lambda out: distill("quick", override, out=out, console=quiet()),
                lambda out: train_teacher(images, None, "teacher-tiny", override, out=out, console=quiet())):
        with pytest.raises(EdgesrError) as info:
            run(tmp_path / "runs")
        errors.append(str(info.value))
        assert not (tmp_path / "runs").exists()
    assert errors[0] == errors[1] and errors[0].startswith(f"recipe key {key}: ") and "\n" not in errors[0]


@pytest.mark.parametrize("command", [["distill"], ["teacher", "train", "--data", "images"]])
def test_log_every_zero_is_the_same_one_line_error_on_both_commands(tmp_path, command):
    write_images(tmp_path / "images", n=3)
    r = run_cli(*command, "--set", "log_every=0", "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert_user_error(r, "error: recipe key log_every: must be >= 1, got 0")
    assert not (tmp_path / "runs").exists()
