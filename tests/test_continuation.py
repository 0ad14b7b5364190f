"""benchmarks/continuation.py on a tiny finished run: its zero-step arm scores the run's student
as the ablation's split scores it, a changed pool gets its teacher outputs computed and kept,
and bad input is refused in one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from edgesr.data.splits import holdout, validation_pairs
from edgesr.evaluate import validation_psnr
from edgesr.models.formats import save_safetensors
from edgesr.models.predict import input_kind, torch_predictor
from edgesr.models.zoo import load_for_scales
from tests.cli_helpers import ROOT, run_cli
from tests.distill_helpers import tiny_teacher


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny cpu-hour run (its pool, cached targets and scale shares) and a 25-image train291; its
    targets the teacher's single pass, so that screening more views is a change."""
    root = tmp_path_factory.mktemp("continuation")
    save_safetensors(tiny_teacher(), root / "teacher.safetensors")
    rng = np.random.default_rng(0)
    data = root / "data" / "train291"
    data.mkdir(parents=True)
    for i in range(25):
        Image.fromarray((rng.random((30, 42, 3)) * 255).astype("uint8")).save(data / f"im{i:02d}.png")
    r = run_cli("distill", "--recipe", "cpu-hour", "--teacher", str(root / "teacher.safetensors"), "--device", "cpu",
                "--threads", "1", "--out", str(root / "runs"), "--set", "student.width=4", "student.depth=6",
                "student.refit_images=0", "samples.pool_images=3", "samples.pool_size=24", "samples.patch=24",
                "progressive.steps=[4]", "budget_minutes=0", "validation.data=null", "evaluation.sets=[]",
                "checkpoint_every=2", "log_every=1", "samples.teacher_views=1")
    assert r.returncode == 0, r.stderr[-2000:]
    return root, root / "runs" / "cpu-hour"


def _continue(root, run, *args):
    return subprocess.run([sys.executable, "benchmarks/continuation.py", "--run", str(run), "--data-root",
                           str(root / "data"), "--cache", str(root / "cache"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_zero_steps_scores_the_runs_student_on_the_ablation_split(finished):
    root, run = finished
    r = _continue(root, run, "--steps", "0", "--out", str(root / "none.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads((root / "none.json").read_text())["scores"]
    student, _ = load_for_scales(str(run), [2, 3, 4])
    _, paths = holdout(root / "data" / "train291", 24)
    for prefix, crop in (("", 128), ("whole_", 100_000)):
        want = validation_psnr(torch_predictor(student), validation_pairs(paths, [2, 3, 4], crop), input_kind(student))
        for key, value in want.items():
            assert got[prefix + key] == pytest.approx(value, abs=1e-4), prefix + key


def test_another_pool_gets_its_teacher_outputs_once(finished):
    root, run = finished
    r = _continue(root, run, "--steps", "3", "--pool-size", "48", "--pool-images", "2", "--gt-share", "0.5",
                  "--out", str(root / "p48.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((root / "p48.json").read_text())
    assert (out["steps"], out["pool_size"], out["pool_images"], out["gt_share"]) == (3, 48, 2, 0.5)
    assert all(np.isfinite(v) for v in out["scores"].values())
    from safetensors.torch import load_file
    (cached,) = (root / "cache").rglob("*.safetensors")
    assert load_file(str(cached))["targets"].shape == (2 * 3, 1, 48, 48)  # 2 images at each of 3 scales


def test_teacher_views_screen_the_teachers_self_ensemble_as_targets(finished):
    """``--teacher-views 8``: the targets are computed once as the mean of the teacher's outputs
    on the eight symmetries of each pool image, mapped back (here recomputed independently of
    the script's own function)."""
    from functools import partial

    from safetensors.torch import load_file

    from edgesr.config import load_recipe
    from edgesr.distill.recipe import DistillRecipe
    from edgesr.models.refit import layerwise_forward
    from edgesr.samples.pool import PoolImages, augment, unaugment

    root, run = finished
    r = _continue(root, run, "--steps", "2", "--teacher-views", "8", "--cache", str(root / "views"),
                  "--out", str(root / "views.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((root / "views.json").read_text())
    assert out["teacher_views"] == 8 and "teacher x8" in out["arm"]
    recipe = load_recipe(DistillRecipe, str(run / "recipe.yaml"))
    sm = recipe.samples
    x = PoolImages.draw(sm.priors, sm.prior_weights, sm.pool_images, sm.pool_size, recipe.scales, recipe.seed).inputs
    teacher, _ = load_for_scales(str(root / "teacher.safetensors"), [2, 3, 4])
    forward = partial(layerwise_forward, teacher.eval())
    with torch.no_grad():
        want = torch.stack([unaugment(forward(augment(x, k)), k) for k in range(8)]).mean(0)
    (cached,) = (root / "views").rglob("*.safetensors")
    assert torch.allclose(load_file(str(cached))["targets"], want, atol=1e-6)


@pytest.mark.parametrize("args, fragment", [(["--gt-share", "2", "--out", "never.json"], "a share"), ([], "--out"),
                                            (["--teacher-views", "9", "--out", "never.json"], "between 1 and 8")])
def test_bad_input_is_refused_in_one_line(finished, args, fragment):
    root, run = finished
    r = _continue(root, run, *args)
    assert r.returncode != 0 and fragment in r.stderr and "Traceback" not in r.stderr


def test_teacher_views_benchmark_scores_the_teachers_self_ensemble(finished):
    """benchmarks/teacher_views.py: its one-view row is the teacher as the ablation's split scores
    it, and it times a pool pass both ways on the recipe's teacher."""
    root, run = finished
    r = subprocess.run([sys.executable, "benchmarks/teacher_views.py", "--recipe", str(run / "recipe.yaml"),
                        "--images", "2", "--views", "1", "8", "--threads", "1", "--data-root", str(root / "data"),
                        "--out", str(root / "tv.json")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((root / "tv.json").read_text())
    teacher, _ = load_for_scales(str(root / "teacher.safetensors"), [2, 3, 4])
    _, paths = holdout(root / "data" / "train291", 24)
    want = validation_psnr(torch_predictor(teacher), validation_pairs(paths, [2, 3, 4], 128), input_kind(teacher))
    one, eight = out["scores"]
    assert (one["views"], eight["views"]) == (1, 8)
    for key, value in want.items():
        assert one[key] == pytest.approx(value, abs=1e-4), key
    assert eight["val_psnr"] != one["val_psnr"] and np.isfinite(eight["val_psnr"])
    timing = out["timing"]
    from edgesr.train.trainer import native_cpu_bf16

    assert timing["images"] == 2 * 3 and timing["bf16"] == native_cpu_bf16()  # the recipe asks for bf16 on CPUs
    assert (timing["pass_psnr_to_float32"] or 999) > (30 if timing["bf16"] else 60)  # that have it
