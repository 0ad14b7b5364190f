"""A run stopped anywhere, resumed with the command it printed, pasted as printed, ends as an
uninterrupted run: stopped during the preparation (the refit), after it (the schedule not yet
fitted: ``tests/test_distill_trainer.py`` covers the budget) and during the final evaluation."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from edgesr.models.formats import save_safetensors
from tests.cli_helpers import ROOT
from tests.distill_helpers import tiny_teacher
from tests.test_hostile_inputs import run_edgesr


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("anywhere")
    save_safetensors(tiny_teacher(), root / "teacher.safetensors")
    images = root / "set"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((36, 36, 3)) * 255).astype(np.uint8)).save(images / f"{i}.png")
    args = ["distill", "--recipe", "quick", "--teacher", str(root / "teacher.safetensors"), "--device", "cpu",
            "--threads", "1", "--set", "student.width=4", "student.depth=6", "samples.pool_images=4",
            "samples.pool_size=24", "samples.patch=12", "student.refit_images=2", "progressive.steps=[12]",
            "budget_minutes=0", "validation.data=null", f"evaluation.sets=[{images}]", "checkpoint_every=5"]
    code, _, err = run_edgesr([*args[:1], "--out", str(root / "whole"), *args[1:]])
    assert code == 0, err
    return root, args


def _stop_here(signum: int):
    def wrap(original):
        def stopped(*a, **kw):
            os.kill(os.getpid(), signum)  # the handler runs now, before the original starts
            return original(*a, **kw)
        return stopped
    return wrap


@pytest.mark.parametrize("where,signum,said", [
    ("preparation", signal.SIGINT, "before the first step: nothing to keep yet"),
    ("evaluation", signal.SIGTERM, "during the final evaluation: the trained student is saved"),
])
def test_a_stop_resumes_with_the_printed_command_to_the_same_student(setup, monkeypatch, where, signum, said):
    import edgesr.distill.trainer as distill_trainer
    import edgesr.train.command as command

    root, args = setup
    out = root / f"stopped-{where}"
    if where == "preparation":
        monkeypatch.setattr(distill_trainer.Distiller, "begin",
                            _stop_here(signum)(distill_trainer.Distiller.begin))
    else:
        monkeypatch.setattr(command, "evaluate_rows", _stop_here(signum)(command.evaluate_rows))
    code, _, err = run_edgesr([*args[:1], "--out", str(out), *args[1:]])
    monkeypatch.undo()
    assert code == 128 + signum, err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    assert line.startswith(f"stopped: {signal.Signals(signum).name} {said}"), line
    run = out / "quick"
    assert not (run / "results.json").exists()
    pasted = line.split("continue with ", 1)[1].split(" (", 1)[0]
    done = subprocess.run(shlex.split(pasted), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    whole, resumed = load_file(root / "whole" / "quick" / "student.safetensors"), load_file(run / "student.safetensors")
    assert whole.keys() == resumed.keys()
    for k in whole:
        assert torch.equal(whole[k], resumed[k]), k
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == 12 and results["student"]
