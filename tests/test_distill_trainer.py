import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from edgesr.data.benchmark import pair_from_image
from edgesr.distill.trainer import Distiller
from edgesr.errors import EdgesrError
from edgesr.models.formats import save_safetensors
from edgesr.train.checkpoint import Diverged, load_checkpoint, save_checkpoint
from edgesr.train.checkpoint import resume as resume_from
from edgesr.train.loop import Interrupted, StopRequest, fit
from edgesr.train.run_folder import CHECKPOINT_FILE, MetricsLog
from tests.cli_helpers import ROOT
from tests.distill_helpers import tiny_distiller, tiny_recipe, tiny_teacher


def _train(run_dir, recipe, stop_at: int | None = None, resume: bool = False) -> Distiller:
    d = Distiller(recipe, tiny_teacher(), torch.device("cpu"))
    if resume:
        resume_from(d, run_dir / CHECKPOINT_FILE)
    d.begin(resume, run_dir)
    stop = StopRequest()

    def on_step(step, _rec):
        if stop_at is not None and step == stop_at:
            stop(signal.SIGTERM, None)

    log = MetricsLog(run_dir / "metrics.jsonl", resume_step=d.step if resume else None)
    try:
        fit(d, run_dir, log, stop, on_step)
    finally:
        log.close()
    return d


def test_resume_ends_with_the_same_weights(tmp_path):
    recipe = tiny_recipe(progressive={"stages": 2, "steps": [5]}, checkpoint_every=100)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = _train(tmp_path / "a", recipe)
    with pytest.raises(Interrupted, match="--resume"):
        _train(tmp_path / "b", recipe, stop_at=4)  # mid-stage-0, mid-cycle
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT_FILE)["step"] == 4
    resumed = _train(tmp_path / "b", recipe, resume=True)
    assert resumed.step == full.step == 10 and resumed.student.blocks == 4
    for k, v in full.student.state_dict().items():
        assert torch.equal(resumed.student.state_dict()[k], v), k
    for s in full.gens:
        for k, v in full.gens[s].state_dict().items():
            assert torch.equal(resumed.gens[s].state_dict()[k], v), (s, k)
    steps = lambda p: [json.loads(ln)["step"] for ln in p.read_text().splitlines()]  # noqa: E731
    assert steps(tmp_path / "a" / "metrics.jsonl") == steps(tmp_path / "b" / "metrics.jsonl")


POOL = {"samples": {"priors": ["dead-leaves"], "pool_images": 3, "pool_size": 16, "patch": 8},
        "student": {"width": 4, "depth": 6, "init": "teacher-refit"}, "progressive": {"stages": 1, "steps": [8]}}


@pytest.mark.parametrize("share,refit_images,slow,margin,ema,weights", [
    (0.0, 0, 0, 0, 0, ()), (0.5, 0, 0, 0, 0, ()), (0.0, 2, 0, 0, 0, ()), (0.0, 0, 2, 0, 0, ()),
    (0.0, 0, 0, 2, 0, ()), (0.0, 0, 0, 0, 0.9, ()), (0.5, 0, 0, 0, 0, (3, 1))])
def test_resume_with_a_refitted_student_and_a_pool_ends_with_the_same_weights(tmp_path, share, refit_images, slow,
                                                                              margin, ema, weights):
    """The pool is drawn again and its targets recomputed on resume (no refit): same weights to
    the bit, also when the refit used only part of the pool, when the first convs learn slower
    (a second optimizer group), when the loss leaves out the crops' margins, for the
    student's weight average and when the scales are drawn in proportions of their own."""
    recipe = tiny_recipe(**{**POOL, "samples": {**POOL["samples"], "generator_share": share, "loss_margin": margin,
                                                "scale_weights": weights},
                            "student": {**POOL["student"], "refit_images": refit_images, "slow_convs": slow,
                                        "slow_lr": 0.5, "ema": ema}}, checkpoint_every=100)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = _train(tmp_path / "a", recipe)
    assert full.pool is not None and len(full.pool.inputs) == 3 * 2 and bool(full.gens) == (share > 0)
    with pytest.raises(Interrupted):
        _train(tmp_path / "b", recipe, stop_at=3)
    resumed = _train(tmp_path / "b", recipe, resume=True)
    assert torch.equal(resumed.pool.targets, full.pool.targets)
    for k, v in full.student.state_dict().items():
        assert torch.equal(resumed.student.state_dict()[k], v), k
    if ema:
        assert resumed.average.updates == full.average.updates == 8
        fresh = Distiller(recipe, tiny_teacher(), torch.device("cpu"))
        fresh.begin(False)
        for k, v in fresh.student.state_dict().items():  # the average starts from the refit
            assert torch.equal(fresh.model.state_dict()[k], v), k
        for k, v in full.model.state_dict().items():
            assert torch.equal(resumed.model.state_dict()[k], v), k


def test_scale_weights_set_how_often_each_scale_is_drawn(monkeypatch):
    """The pool's rows and the generators' cycles come at each scale as often as
    ``samples.scale_weights`` says: a zero weight never, 3:1 about three times as often."""
    from edgesr.samples.pool import SamplePool

    # each pool row a constant image of its own index, so a crop says which row it came from
    rows = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 8, 8).contiguous()
    scales = torch.tensor([2, 2, 2, 4, 4, 4])

    def x2_share(weights: dict[int, float], draws: int = 800) -> float:
        torch.manual_seed(0)
        pool = SamplePool(rows, rows.clone(), scales, scale_weights=weights)
        batches = [pool.batch(4, 4) for _ in range(draws // 4)]
        assert all(torch.equal(x, y) for x, y in batches)  # a crop's target is the same row's
        drawn = torch.cat([x[:, 0, 0, 0] for x, _ in batches])
        return float((drawn < 3).float().mean())

    assert x2_share({2: 1.0, 4: 0.0}) == 1.0
    assert x2_share({2: 0.0, 4: 2.0}) == 0.0
    assert 0.70 < x2_share({2: 3.0, 4: 1.0}, 4000) < 0.80
    assert 0.45 < x2_share({}, 4000) < 0.55

    d = tiny_distiller(**{**POOL, "samples": {**POOL["samples"], "generator_share": 0.5, "scale_weights": [0, 1]}})
    d.begin(False)
    assert d.pool.scale_weights == {2: 0, 4: 1}
    picked = []
    original = Distiller.student_step
    monkeypatch.setattr(Distiller, "student_step", lambda self, scale: picked.append(scale) or original(self, scale))
    for _ in range(6):
        d.train_step()
        d.step += 1
    assert set(picked) == {4}  # the generators' cycles: x4 only


def test_the_weight_average_is_what_validation_scores_and_the_run_saves(tmp_path):
    """With ``student.ema`` the run's model is the average, a network apart from the trained
    student; validation scores both (``val_psnr_trained``), and a progressive student's
    average starts again from the grown student at each stage."""
    recipe = tiny_recipe(progressive={"stages": 2, "steps": [3]}, student={"width": 4, "depth": 6, "ema": 0.5},
                         checkpoint_every=100)
    d = Distiller(recipe, tiny_teacher(), torch.device("cpu"), val_pairs=_val_pairs())
    assert d.model is d.average.net and d.model is not d.student
    log = MetricsLog(tmp_path / "metrics.jsonl")
    try:
        fit(d, tmp_path, log, StopRequest(), lambda *_: None)
    finally:
        log.close()
    assert d.student.blocks == d.model.blocks == 4 and d.average.updates == 3  # the second stage's steps
    differs = [k for k, v in d.student.state_dict().items() if not torch.equal(d.model.state_dict()[k], v)]
    assert differs
    scores = d.validate()
    assert {"val_psnr", "val_psnr_x2", "val_psnr_trained", "val_psnr_trained_x2"} <= scores.keys()
    assert scores["val_psnr"] != scores["val_psnr_trained"]


def _val_pairs() -> dict:
    """One random 36-px colour image through the MATLAB pipeline at the tiny recipe's scales."""
    image = np.random.default_rng(0).integers(0, 256, (36, 36, 3), dtype=np.uint8)
    return {s: [pair_from_image("noise", image, s)] for s in (2, 4)}


def test_frozen_first_convs_keep_their_refitted_weights(tmp_path):
    """slow_lr 0 freezes the first slow_convs convs where the refit left them; the rest learns."""
    recipe = tiny_recipe(**{**POOL, "student": {**POOL["student"], "slow_convs": 2, "slow_lr": 0.0},
                            "student_optim": {"name": "adam", "lr": 1e-2}}, checkpoint_every=100)
    d = Distiller(recipe, tiny_teacher(), torch.device("cpu"))
    d.begin(False, tmp_path)
    refitted = {k: v.clone() for k, v in d.student.state_dict().items()}
    log = MetricsLog(tmp_path / "metrics.jsonl")
    try:
        fit(d, tmp_path, log, StopRequest(), lambda *_: None)
    finally:
        log.close()
    after = d.student.state_dict()
    assert torch.equal(after["head.weight"], refitted["head.weight"])
    assert torch.equal(after["body.0.conv.weight"], refitted["body.0.conv.weight"])
    assert not torch.equal(after["body.1.conv.weight"], refitted["body.1.conv.weight"])
    assert not torch.equal(after["tail.weight"], refitted["tail.weight"])


def test_feature_loss_trains_and_resumes_to_the_same_weights(tmp_path):
    """With losses.w_feat the student also learns the teacher's features on the refit's channel
    correspondence, which the checkpoint carries: a resumed run ends where an uninterrupted one does."""
    recipe = tiny_recipe(**POOL, losses={"w_feat": 0.5}, checkpoint_every=100)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = _train(tmp_path / "a", recipe)
    assert full.feature_channels is not None and full.feature_channels.shape == (full.student.blocks, 4)
    logged = [json.loads(ln) for ln in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["feat"] > 0 for r in logged if "feat" in r] == [True] * 8  # every step logs it
    (tmp_path / "c").mkdir()
    plain = _train(tmp_path / "c", tiny_recipe(**POOL, checkpoint_every=100))
    assert any(not torch.equal(plain.student.state_dict()[k], v) for k, v in full.student.state_dict().items())
    with pytest.raises(Interrupted):
        _train(tmp_path / "b", recipe, stop_at=3)
    assert torch.equal(load_checkpoint(tmp_path / "b" / CHECKPOINT_FILE)["feature_channels"], full.feature_channels)
    resumed = _train(tmp_path / "b", recipe, resume=True)
    for k, v in full.student.state_dict().items():
        assert torch.equal(resumed.student.state_dict()[k], v), k


def test_a_checkpoint_with_a_bad_feature_correspondence_is_one_line(tmp_path):
    recipe = tiny_recipe(**POOL, losses={"w_feat": 0.5}, checkpoint_every=100)
    with pytest.raises(Interrupted):
        _train(tmp_path, recipe, stop_at=3)
    state = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    for bad in (state["feature_channels"] + 1000, state["feature_channels"][:1], state["feature_channels"].float()):
        torch.save({**state, "feature_channels": bad}, tmp_path / CHECKPOINT_FILE)
        with pytest.raises(EdgesrError, match="does not fit this run's recipe .*feature_channels"):
            _train(tmp_path, recipe, resume=True)


def test_refit_on_part_of_the_pool_fits_those_images_and_keeps_every_target():
    """``student.refit_images`` fits the student on the first images (at every scale) only: the
    same student as a run whose whole pool is those images, and the teacher's outputs for the
    whole pool, as a resumed run computes them."""
    from edgesr.models.refit import layerwise_forward

    part = Distiller(tiny_recipe(**{**POOL, "samples": {**POOL["samples"], "pool_images": 5},
                                    "student": {**POOL["student"], "refit_images": 3}}),
                     tiny_teacher(), torch.device("cpu"))
    small = Distiller(tiny_recipe(**{**POOL, "student": {**POOL["student"], "refit_images": 7}}),
                      tiny_teacher(), torch.device("cpu"))  # at most 7: the whole pool of 3
    for d in (part, small):
        d.begin(False)
    assert len(part.pool.inputs) == 5 * 2
    assert torch.equal(part.pool.targets, layerwise_forward(part.teacher, part.pool.inputs))
    for k, v in small.student.state_dict().items():
        assert torch.equal(part.student.state_dict()[k], v), k


@pytest.mark.parametrize("refit_images", [0, 2])
def test_teacher_views_average_the_pool_targets_and_a_resume_recomputes_them_to_the_bit(tmp_path, refit_images):
    """``samples.teacher_views``: the pool's targets are the teacher's outputs averaged over that
    many symmetries of each image, mapped back; a run resumed without its saved targets
    recomputes the same ones (the refit's own teacher pass included) and ends with the same weights."""
    from edgesr.models.refit import layerwise_forward
    from edgesr.samples.pool import TARGETS_FILE, augment, unaugment

    recipe = tiny_recipe(**{**POOL, "samples": {**POOL["samples"], "teacher_views": 8},
                            "student": {**POOL["student"], "refit_images": refit_images}}, checkpoint_every=100)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = _train(tmp_path / "a", recipe)
    x = full.pool.inputs
    views = [unaugment(layerwise_forward(full.teacher, augment(x, k)), k) for k in range(8)]
    assert torch.allclose(full.pool.targets, torch.stack(views).mean(0), atol=1e-5)
    assert not torch.allclose(full.pool.targets, views[0], atol=1e-4)
    with pytest.raises(Interrupted):
        _train(tmp_path / "b", recipe, stop_at=3)
    (tmp_path / "b" / TARGETS_FILE).unlink()
    resumed = _train(tmp_path / "b", recipe, resume=True)
    assert torch.equal(resumed.pool.targets, full.pool.targets)
    for k, v in full.student.state_dict().items():
        assert torch.equal(resumed.student.state_dict()[k], v), k


def test_targets_saved_for_another_number_of_teacher_views_are_not_used(tmp_path):
    from edgesr.distill.trainer import pool_key
    from edgesr.samples.pool import load_targets, save_targets

    one = tiny_recipe(**POOL)
    eight = tiny_recipe(**{**POOL, "samples": {**POOL["samples"], "teacher_views": 8}})
    assert pool_key(one) != pool_key(eight)
    save_targets(tmp_path, pool_key(one), torch.zeros(6, 1, 16, 16))
    assert load_targets(tmp_path, pool_key(eight), torch.Size((6, 1, 16, 16))) is None
    assert load_targets(tmp_path, pool_key(one), torch.Size((6, 1, 16, 16))) is not None


def test_refit_init_starts_closer_to_the_teacher_than_pruning():
    refit = Distiller(tiny_recipe(**POOL), tiny_teacher(), torch.device("cpu"))
    pruned = Distiller(tiny_recipe(**{**POOL, "student": {**POOL["student"], "init": "teacher-prune"}}),
                       tiny_teacher(), torch.device("cpu"))
    for d in (refit, pruned):
        d.begin(False)
    x, y = refit.pool.inputs, refit.pool.targets
    with torch.no_grad():
        err_refit, err_pruned = (float((d.student(x) - y).square().mean()) for d in (refit, pruned))
    assert torch.equal(refit.pool.targets, pruned.pool.targets)
    assert err_refit < 0.75 * err_pruned


def test_budget_fits_the_stage_plan_to_end_on_time(tmp_path, monkeypatch):
    from edgesr.train import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "SPEED_WINDOW", (2, 4))
    recipe = tiny_recipe(progressive={"stages": 2, "steps": [50000]}, budget_minutes=0.05, checkpoint_every=100)
    d = _train(tmp_path, recipe)
    assert 4 < d.horizon < 100000 and d.step <= d.horizon and len(d.plan.lengths) == 2
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["horizon"] == d.horizon


class StepClock:
    """A stand-in for ``time`` whose clock advances the same on every read: a budgeted run then
    fits its schedule at the same step to the same horizon however often it is stopped."""

    def __init__(self, tick: float = 0.5) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def test_a_stop_before_the_schedule_is_fitted_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Stopped inside the speed measurement (before the budget fitted the schedule) and resumed:
    the resumed run fits the same horizon at the same step and ends with the same weights
    (the start of the measurement is checkpointed). A resume that forgot it kept the recipe's
    20x longer schedule until the budget cut it, its learning rate never decayed."""
    from types import SimpleNamespace

    from edgesr.train import loop as loop_mod
    from edgesr.train import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "SPEED_WINDOW", (2, 6))
    recipe = tiny_recipe(progressive={"stages": 1, "steps": [1000]}, budget_minutes=0.2, checkpoint_every=100,
                         student_optim={"name": "adam", "lr": 1e-3, "schedule": "cosine"})
    runs = {}
    for name, stops in (("whole", [None]), ("stopped", [4, None])):
        (tmp_path / name).mkdir()
        for i, stop_at in enumerate(stops):
            monkeypatch.setattr(loop_mod, "time", SimpleNamespace(perf_counter=StepClock().perf_counter))
            if stop_at is None:
                runs[name] = _train(tmp_path / name, recipe, resume=i > 0)
            else:
                with pytest.raises(Interrupted):
                    _train(tmp_path / name, recipe, stop_at=stop_at)
    whole, stopped = runs["whole"], runs["stopped"]
    assert 6 < whole.horizon < 1000 and stopped.horizon == whole.horizon and stopped.step == whole.step
    assert stopped.student_opt.param_groups[0]["lr"] == whole.student_opt.param_groups[0]["lr"] < 1e-4
    for k, v in whole.student.state_dict().items():
        assert torch.equal(stopped.student.state_dict()[k], v), k


def test_the_second_fit_uses_the_time_the_first_speed_sample_underestimated(tmp_path, monkeypatch):
    """Steps twice as slow inside the speed window as after it (an hour's run on this CPU ran
    13.6 steps/s there and 14.5 over the hour): the first fit plans too few steps (the run would
    end at 57% of its budget); the second, from the speed over a quarter of the training time,
    lengthens the schedule so that the run ends near its budget. Stopped between the fits, and
    after the second, and resumed: the same horizon, steps and weights as the uninterrupted run."""
    from types import SimpleNamespace

    from edgesr.train import loop as loop_mod
    from edgesr.train import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "SPEED_WINDOW", (2, 6))
    clock = StepClock(1.0)
    step_of = Distiller.train_step

    def timed_step(self):  # a step's duration depends on the step alone, so resumes see the same times
        clock.tick = 1.0 if self.step < 6 else 0.5
        return step_of(self)

    monkeypatch.setattr(Distiller, "train_step", timed_step)
    monkeypatch.setattr(loop_mod, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    recipe = tiny_recipe(progressive={"stages": 1, "steps": [1000]}, budget_minutes=0.5, checkpoint_every=100,
                         student_optim={"name": "adam", "lr": 1e-3, "schedule": "cosine"})
    runs, stopped = {}, {}
    for name, stops in (("whole", [None]), ("between", [8, None]), ("after", [20, None])):
        (tmp_path / name).mkdir()
        for i, stop_at in enumerate(stops):
            if stop_at is None:
                runs[name] = _train(tmp_path / name, recipe, resume=i > 0)
            else:
                with pytest.raises(Interrupted):
                    _train(tmp_path / name, recipe, stop_at=stop_at)
                stopped[name] = load_checkpoint(tmp_path / name / CHECKPOINT_FILE)
    whole = runs["whole"]
    assert stopped["between"]["refitted"] is False and 6 < stopped["between"]["horizon"] < 1000
    assert stopped["after"]["refitted"] is True
    assert whole.refitted and whole.step == whole.horizon > 1.3 * stopped["between"]["horizon"]
    assert 0.75 * 30 < whole.elapsed <= 30
    for name in ("between", "after"):
        other = runs[name]
        assert (other.horizon, other.step, other.elapsed) == (whole.horizon, whole.step, whole.elapsed), name
        for k, v in whole.student.state_dict().items():
            assert torch.equal(other.student.state_dict()[k], v), (name, k)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    recipe = tiny_recipe(max_bad_steps=3, checkpoint_every=2)
    d = Distiller(recipe, tiny_teacher(), torch.device("cpu"))
    log = MetricsLog(tmp_path / "metrics.jsonl")
    stop = StopRequest()

    def poison(step, _rec):
        if step == 2:  # after the first checkpoint the teacher starts emitting NaN
            d.teacher.head.weight.data.fill_(float("nan"))

    with pytest.raises(Diverged, match="non-finite"):
        fit(d, tmp_path, log, stop, poison)
    state = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["student"].values())


def test_checkpoint_refuses_non_finite_weights(tmp_path):
    d = Distiller(tiny_recipe(), tiny_teacher(), torch.device("cpu"))
    d.student.tail.weight.data[0, 0, 0, 0] = float("inf")
    with pytest.raises(Diverged):
        save_checkpoint(d, tmp_path / CHECKPOINT_FILE)
    assert not (tmp_path / CHECKPOINT_FILE).exists()


def test_cli_sigterm_then_resume(tmp_path):
    """The real command: SIGTERM mid-run writes a checkpoint; --resume completes the run."""
    teacher = tmp_path / "teacher.safetensors"
    save_safetensors(tiny_teacher(), teacher)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "name: tiny\nbatch_size: 4\nstudent_steps_per_gen_step: 2\nscales: [2, 4]\n"
        "student: {width: 4, depth: 6}\nstudent_optim: {name: sgd, lr: 0.01}\n"
        "generator: {lr_sizes: [8, 8], channels: 8, z_dim: 16}\n"
        "cmi: {bank_size: 8, negatives: 4, head_dim: 8}\nprogressive: {stages: 2, steps: [100]}\n"
        "validation: {data: null}\nevaluation: {sets: []}\ncheckpoint_every: 5\nlog_every: 5\n"
    )
    args = [sys.executable, "-m", "edgesr", "distill", "--recipe", str(recipe), "--teacher", str(teacher),
            "--out", str(tmp_path / "runs"), "--device", "cpu"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "120"})
    ckpt = tmp_path / "runs" / "tiny" / CHECKPOINT_FILE
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    # a requested stop is not an error: "stopped:", 128 + SIGTERM, and a command that pastes
    assert proc.returncode == 143 and "Traceback" not in err, err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    assert line.startswith("stopped: SIGTERM at step") and "error" not in line
    pasted = line.split("continue with ", 1)[1]
    assert pasted == f"{shlex.quote(sys.executable)} -m edgesr distill --resume {tmp_path / 'runs' / 'tiny'}"
    step = load_checkpoint(ckpt)["step"]
    assert 0 < step < 200
    done = subprocess.run(shlex.split(pasted), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "tiny"
    assert json.loads((run / "results.json").read_text())["steps"] == 200
    for f in ("student.safetensors", "generators.safetensors", "metrics.png", "recipe.yaml"):
        assert (run / f).is_file(), f
