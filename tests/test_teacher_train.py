import json
import os
import signal

import numpy as np
import pytest
import torch

from edgesr.config import load_recipe
from edgesr.data.benchmark import degrade
from edgesr.errors import EdgesrError
from edgesr.models.formats import save_safetensors
from edgesr.models.zoo import load_model
from edgesr.ops import modcrop
from edgesr.teacher.command import split_images, train_teacher
from edgesr.teacher.patches import PatchSampler, read_y
from edgesr.teacher.recipe import TeacherRecipe
from edgesr.train import trainer as trainer_mod
from edgesr.train.checkpoint import Diverged, load_checkpoint, save_checkpoint
from edgesr.train.checkpoint import resume as resume_from
from edgesr.train.loop import Interrupted, StopRequest, fit, stop_on_signals
from edgesr.train.run_folder import CHECKPOINT_FILE, MetricsLog
from tests.cli_helpers import assert_user_error, run_cli
from tests.teacher_helpers import tiny_recipe, tiny_trainer, write_images


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("train"))


def _run(trainer, run_dir, stop=None, on_step=None, resume=False):
    if resume:
        resume_from(trainer, run_dir / CHECKPOINT_FILE)
    log = MetricsLog(run_dir / "metrics.jsonl", resume_step=trainer.step if resume else None)
    try:
        fit(trainer, run_dir, log, stop or StopRequest(), on_step)
    finally:
        log.close()
    return trainer


# ------------------------------------------------------------------ patches
def test_patches_are_the_matlab_pipeline_on_whole_images_with_symmetries(images):
    ys = read_y(sorted(images.iterdir())[:2])
    scales, p = [2, 3], 24
    sampler = PatchSampler(ys, scales, p, torch.device("cpu"))
    for img, (si, s), top, left, sym in [(0, (0, 2), 5, 7, 0), (1, (1, 3), 0, 48, 3), (1, (0, 2), 35, 0, 6),
                                         (0, (1, 3), 33, 47, 7)]:
        t = lambda v: torch.tensor([v])  # noqa: E731
        bic, hr = sampler.crop(t(img), t(si), t(top), t(left), t(sym))
        ref_bic = degrade(modcrop(ys[img], s), s)[1]
        for got, full in ((hr, ys[img]), (bic, ref_bic)):
            want = full[top : top + p, left : left + p]
            want = want[::-1] if sym & 2 else want
            want = want[:, ::-1] if sym & 4 else want
            want = want.T if sym & 1 else want
            np.testing.assert_allclose(got[0, 0].numpy(), want, atol=2e-6)


def test_random_patches_stay_inside_the_modcropped_images():
    # flat images: the bicubic is 0.5 inside each per-scale modcrop and 0 in the unused rest
    flat = [np.full(shape, 0.5) for shape in ((61, 73), (25, 37), (29, 26))]
    sampler = PatchSampler(flat, [2, 3], 24, torch.device("cpu"))
    torch.manual_seed(0)
    bic, hr = sampler.sample(4000)
    assert bic.shape == hr.shape == (4000, 1, 24, 24)
    np.testing.assert_allclose(bic.numpy(), 0.5, atol=1e-6)


def test_images_smaller_than_the_patch_are_left_out_or_refused(images):
    ys = read_y(sorted(images.iterdir()))
    sampler = PatchSampler([*ys, np.full((20, 100), 0.5)], [2, 3], 24, torch.device("cpu"))
    assert sampler.images == len(ys) and sampler.dropped == 1
    with pytest.raises(EdgesrError, match="patches.size"):
        PatchSampler(ys, [2], 64, torch.device("cpu"))


# ------------------------------------------------------------------ recipes
def test_shipped_recipes_validate():
    gpu, tiny = load_recipe(TeacherRecipe, "teacher"), load_recipe(TeacherRecipe, "teacher-tiny")
    assert (gpu.width, gpu.depth, gpu.scales) == (64, 20, (2, 3, 4)) and gpu.device == "auto"
    assert tiny.device == "cpu" and tiny.width < gpu.width


@pytest.mark.parametrize("override, key", [
    ({"scales": [1, 2]}, "scales"), ({"loss": "l3"}, "loss"), ({"patches": {"size": 4}}, "patches.size"),
    ({"patches": {"downsizes": [1.5]}}, "patches.downsizes"), ({"batch_size": 0}, "batch_size"),
    ({"optim": {"lr": "fast"}}, "optim.lr"), ({"budget": 3}, "budget"),
])
def test_recipe_errors_name_the_key(images, override, key):
    with pytest.raises(EdgesrError, match=f"recipe key {key}"):
        tiny_recipe(images, **override)


def test_validation_comes_from_data_or_another_folder(images, tmp_path):
    files = sorted(images.iterdir())
    assert split_images(tiny_recipe(images)) == (files[:-2], files[-2:])
    other = write_images(tmp_path / "other", n=3, seed=2)
    train, val = split_images(tiny_recipe(images, validation={"data": str(other), "images": 2, "crop": 48}))
    assert train == files and val == sorted(other.iterdir())[-2:]


# ------------------------------------------------------------------ training
def test_loss_decreases_and_validation_beats_the_start(images, tmp_path):
    t = _run(tiny_trainer(tiny_recipe(images, steps=60, checkpoint_every=100)), tmp_path)
    losses = [r["loss"] for r in MetricsLog(tmp_path / "metrics.jsonl").read() if "loss" in r]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    val = [r["val_psnr"] for r in MetricsLog(tmp_path / "metrics.jsonl").read() if "val_psnr" in r]
    assert val[-1] > val[0] and set(t.validate()) == {"val_psnr", "val_psnr_x2", "val_psnr_x3"}


def test_init_starts_from_given_weights_and_checks_their_shape(images, tmp_path):
    first = _run(tiny_trainer(tiny_recipe(images, steps=20, checkpoint_every=100)), tmp_path)
    weights = tmp_path / "first.safetensors"
    save_safetensors(first.model, weights, {})
    second = tiny_trainer(tiny_recipe(images, init=str(weights)))
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                 second.model.state_dict().values()))
    assert second.validate() == pytest.approx(first.validate())
    with pytest.raises(EdgesrError, match="8-wide, 5-layer VDSR; the recipe trains 8x6"):
        tiny_trainer(tiny_recipe(images, depth=6, init=str(weights)))


def test_resume_ends_with_the_same_weights(images, tmp_path):
    recipe = tiny_recipe(images, checkpoint_every=100)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = _run(tiny_trainer(recipe), (tmp_path / "a"))
    stop = StopRequest()

    def stop_at_5(step, _rec):
        if step == 5:
            stop(signal.SIGTERM, None)

    with pytest.raises(Interrupted, match="teacher train --resume"):
        _run(tiny_trainer(recipe), tmp_path / "b", stop, stop_at_5)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT_FILE)["step"] == 5
    resumed = _run(tiny_trainer(recipe), tmp_path / "b", resume=True)
    assert resumed.step == full.step == recipe.steps
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    read = lambda p: [json.loads(ln) for ln in p.read_text().splitlines()]  # noqa: E731
    a, b = read(tmp_path / "a" / "metrics.jsonl"), read(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_a_real_sigterm_checkpoints_and_stops(images, tmp_path):
    t = tiny_trainer(tiny_recipe(images, checkpoint_every=100))

    def send(step, _rec):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with stop_on_signals() as stop, pytest.raises(Interrupted, match="SIGTERM at step 3"):
        _run(t, tmp_path, stop, send)
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["step"] == 3


def test_nan_guard_stops_and_keeps_last_good_checkpoint(images, tmp_path):
    t = tiny_trainer(tiny_recipe(images, max_bad_steps=3, steps=20))

    def poison(step, _rec):
        if step == 4:  # just after the first checkpoint, the data turns to NaN
            t.sampler.hr.fill_(float("nan"))

    with pytest.raises(Diverged, match="non-finite"):
        _run(t, tmp_path, on_step=poison)
    assert t.step == 6  # steps 5 and 6 skipped, the third bad one (7th) raised
    state = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert all(torch.isfinite(p).all() for p in t.model.parameters())  # bad steps never updated


def test_checkpoint_refuses_non_finite_weights(images, tmp_path):
    t = tiny_trainer(tiny_recipe(images))
    t.model.tail.weight.data[0, 0, 0, 0] = float("inf")
    with pytest.raises(Diverged):
        save_checkpoint(t, tmp_path / CHECKPOINT_FILE)
    assert not (tmp_path / CHECKPOINT_FILE).exists()


def test_budget_shortens_the_schedule_to_end_on_time(images, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_mod, "SPEED_WINDOW", (2, 4))
    t = _run(tiny_trainer(tiny_recipe(images, steps=100000, budget_minutes=0.05)), tmp_path)
    assert 4 < t.horizon < 100000 and t.step <= t.horizon
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["horizon"] == t.horizon


# ------------------------------------------------------------------ command
def test_needs_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EdgesrError, match="--data"):
        train_teacher(recipe_name="teacher-tiny")


def test_bad_inputs_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = write_images(tmp_path / "broken", n=12)
    (broken / "img03.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for folder, fragment in ((tmp_path / "missing", "image folder not found"), (empty, "has 0 images"),
                             (broken, "cannot read image")):
        r = run_cli("teacher", "train", "--recipe", "teacher-tiny", "--data", str(folder), "--out", str(tmp_path))
        assert_user_error(r, fragment)


def test_cli_run_writes_a_loadable_teacher_and_results(images, tmp_path):
    bench = write_images(tmp_path / "bench", n=2, shape=(36, 48), seed=1)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"name: tiny\nwidth: 8\ndepth: 5\nbatch_size: 4\nsteps: 6\npatches: {{size: 24}}\n"
        f"validation: {{images: 2, crop: 48, every: 3}}\n"
        f"evaluation: {{sets: [{bench}, {tmp_path / 'nope'}], ssim: false}}\ncheckpoint_every: 3\nlog_every: 2\n")
    r = run_cli("teacher", "train", "--recipe", str(recipe), "--data", str(images), "--scales", "2", "3",
                "--device", "cpu", "--out", str(tmp_path / "runs"), env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "tiny"
    assert "nope not found: skipped" in r.stdout
    res = json.loads((run / "results.json").read_text())
    assert res["steps"] == 6 and [(s["set"], s["scale"]) for s in res["teacher"]] == [("bench", 2), ("bench", 3)]
    for f in ("metrics.png", "recipe.yaml", "checkpoint.pt"):
        assert (run / f).is_file(), f
    assert "scales:\n- 2\n- 3\n" in (run / "recipe.yaml").read_text()
    net, meta = load_model(str(run / "teacher.safetensors"))
    assert (net.width, net.depth, meta["steps"]) == (8, 5, "6")
    done = run_cli("teacher", "train", "--resume", str(run))
    assert_user_error(done, "already complete")


def test_a_run_the_budget_ends_says_so_and_shows_its_last_step(images, tmp_path):
    """Without a terminal: the last step reached is shown even between two due lines, and why
    the run ended before its horizon (a budget that counts the preparation can end it early)."""
    r = run_cli("teacher", "train", "--recipe", "teacher-tiny", "--data", str(images), "--out", str(tmp_path),
                "--set", "budget_minutes=0.002", "steps=100000", "validation.images=1", "evaluation.sets=[]",
                "--threads", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    ended = next(ln for ln in lines if "the time budget" in ln)
    step = int(ended.split("at step ")[1].split(" of ")[0])
    assert 0 < step < 100000 and ended.startswith("teacher train: the time budget (0.002 min, preparation included)")
    assert any(ln.startswith(f"teacher train: step {step}/") for ln in lines), r.stdout
