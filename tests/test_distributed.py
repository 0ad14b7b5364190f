"""Training on several processes (torchrun's environment, gloo on this CPU), for both trainers.

One two-process launch (``tests/ddp_worker.py``) trains every scenario; the tests compare what
each rank ended with against the other rank and against the same runs in one process here:

* the ranks end with identical weights, optimiser states, banks and generator states;
* two ranks train as one process does on the same global batches (to float rounding: the
  gradient is summed in another order), progressive growth, refit, pool and CMI included, and
  LR-space students with a shared body and extra updates of one scale;
* a two-rank checkpoint resumes on one process, and a one-process checkpoint on two;
* the CMI memory bank holds the features of both ranks' samples;
* a stop request (a real SIGTERM) on one rank stops both at the same step, one checkpoint;
* a NaN on one rank skips the step on both.

* a rank killed outright makes the other stop with one line.

Then the real command under torchrun, SIGTERM to the launcher.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

from edgesr.distill.command import distill
from edgesr.distill.generator import Generator
from edgesr.distill.trainer import Distiller
from edgesr.errors import EdgesrError
from edgesr.models.formats import save_safetensors
from edgesr.train.checkpoint import load_checkpoint
from edgesr.train.command import resolve_device
from edgesr.train.distributed import World
from edgesr.train.loop import Interrupted
from edgesr.train.run_folder import CHECKPOINT_FILE
from tests.cli_helpers import ROOT
from tests.ddp_helpers import NAN_STEP, distill_recipe, nan_kd_at, run_ranks, snapshot, train
from tests.distill_helpers import tiny_recipe, tiny_teacher
from tests.teacher_helpers import tiny_recipe as teacher_recipe
from tests.teacher_helpers import tiny_trainer as teacher_trainer
from tests.teacher_helpers import write_images

CPU = torch.device("cpu")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this torch has no gloo backend")


def leaves(tree, prefix: str = "") -> dict:
    """A nested state (dicts, lists, tensors, numbers) as ``{path: leaf}``."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in leaves(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, sub in enumerate(tree) for k, v in leaves(sub, f"{prefix}/{i}").items()}
    return {prefix: tree}


def _inert() -> set[str]:
    """Generator parameters with no effect on its output: conv biases an InstanceNorm removes.
    Their true gradient is 0, so Adam turns rounding noise into full-size steps: two ranks and
    one process move them differently (the generators are compared by their outputs instead)."""
    net = Generator(8, 16, 8).net
    return {f"/net.{i}.bias" for i, m in enumerate(net[:-1])
            if isinstance(m, torch.nn.Conv2d) and isinstance(net[i + 1], torch.nn.InstanceNorm2d)}


INERT = _inert()


def generator_outputs(state: dict) -> dict[int, torch.Tensor]:
    out = {}
    for scale, weights in state["gens"].items():
        g = Generator(8, 16, 8)
        g.load_state_dict(weights)
        out[scale] = g(torch.randn(4, 16, generator=torch.Generator().manual_seed(0)))
    return out


def assert_same(a: dict, b: dict, exact: bool) -> None:
    la, lb = leaves(a), leaves(b)
    assert la.keys() == lb.keys()
    if not exact and a.get("gens"):
        for scale, y in generator_outputs(a).items():
            torch.testing.assert_close(y, generator_outputs(b)[scale], rtol=1e-4, atol=2e-5)
    for key, x in la.items():
        y = lb[key]
        if not exact and key.startswith("/gens/") and any(key.endswith(k) for k in INERT):
            continue
        if isinstance(x, torch.Tensor):
            if exact:
                assert torch.equal(x, y), key
            else:
                torch.testing.assert_close(x.float(), y.float(), rtol=1e-4, atol=2e-5, msg=key)
        else:
            assert x == y if exact or not isinstance(x, float) else x == pytest.approx(y, rel=1e-4, abs=1e-6), key


def ranks(out: Path, scenario: str) -> list[dict]:
    return [torch.load(out / scenario / f"rank{r}.pt", weights_only=True) for r in range(2)]


def distiller(kind: str) -> Distiller:
    return Distiller(distill_recipe(kind), tiny_teacher(), CPU)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Every scenario of ``tests/ddp_worker.py``, trained by two ranks; the checkpoint they
    resume (written here, by one process, at step 3) is made first."""
    out = tmp_path_factory.mktemp("ddp")
    images = write_images(out / "images")
    with pytest.raises(Interrupted):
        train(distiller("pooled"), out / "pooled-from-1", stop_at=3)
    (rank0, _, err0), (rank1, _, err1) = run_ranks(["-m", "tests.ddp_worker", str(out), str(images)])
    assert rank0 == 0, err0[-3000:]
    assert rank1 == -signal.SIGKILL, err1[-3000:]  # the last scenario kills it
    return out


@pytest.fixture(scope="module")
def one_process(two_ranks: Path, tmp_path_factory) -> dict[str, dict]:
    """The same runs in one process."""
    out = tmp_path_factory.mktemp("single")
    runs = {kind: snapshot(train(distiller(kind), out / kind)) for kind in ("pooled", "growing", "lr")}
    d = distiller("pooled")
    with nan_kd_at(d, NAN_STEP):
        runs["pooled-nan"] = snapshot(train(d, out / "nan"))
    runs["teacher"] = snapshot(train(teacher_trainer(teacher_recipe(two_ranks / "images")), out / "teacher"))
    return runs


SCENARIOS = ["pooled-full", "growing-full", "lr-full", "pooled-stop", "pooled-from-1", "pooled-nan", "teacher"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ranks_end_identical(two_ranks, scenario):
    """Weights, optimiser states, banks, z and torch's generator state: equal to the bit."""
    first, second = ranks(two_ranks, scenario)
    assert first["step"] == second["step"] > 0
    assert torch.equal(first["rng"], second["rng"])
    assert_same(first["state"], second["state"], exact=True)


@pytest.mark.parametrize("scenario, single", [("pooled-full", "pooled"), ("growing-full", "growing"),
                                              ("lr-full", "lr"), ("pooled-nan", "pooled-nan"),
                                              ("teacher", "teacher")])
def test_two_ranks_train_as_one_process(two_ranks, one_process, scenario, single):
    rank0, _ = ranks(two_ranks, scenario)
    ref = one_process[single]
    assert rank0["step"] == ref["step"] and torch.equal(rank0["rng"], ref["rng"])
    assert_same(rank0["state"], ref["state"], exact=False)


def test_the_bank_holds_both_ranks_features(two_ranks, one_process):
    """Rows 0-1 of each bank write come from rank 0's samples, rows 2-3 from rank 1's; one
    process computes all four rows of the same global batch."""
    rank0, rank1 = ranks(two_ranks, "pooled-full")
    for scale, bank in rank0["state"]["banks"].items():
        assert bank["count"] > 0
        assert torch.equal(bank["data"], rank1["state"]["banks"][scale]["data"])
        torch.testing.assert_close(bank["data"], one_process["pooled"]["state"]["banks"][scale]["data"],
                                   rtol=1e-4, atol=2e-5)
        written = bank["data"][: bank["count"]]
        assert written[2:4].abs().sum() > 0 and not torch.allclose(written[0:2], written[2:4])


def test_a_stop_on_one_rank_stops_both_at_one_step_and_the_checkpoint_resumes_on_one_process(
        two_ranks, one_process, tmp_path):
    rank0, rank1 = ranks(two_ranks, "pooled-stop")
    assert rank0["step"] == rank1["step"] == 3
    assert "SIGTERM at step 3: checkpoint saved" in rank0["message"] == rank1["message"]
    assert load_checkpoint(two_ranks / "pooled-stop" / CHECKPOINT_FILE)["step"] == 3
    resumed = train(distiller("pooled"), two_ranks / "pooled-stop", resume=True)
    assert_same(snapshot(resumed)["state"], one_process["pooled"]["state"], exact=False)


def test_a_one_process_checkpoint_resumes_on_two(two_ranks, one_process):
    rank0, _ = ranks(two_ranks, "pooled-from-1")
    assert_same(rank0["state"], one_process["pooled"]["state"], exact=False)


def test_a_nan_on_one_rank_skips_the_step_on_both(two_ranks, one_process):
    """Rank 1 alone saw a NaN at one step: both skipped it, as one process skipping it does."""
    nan, _ = ranks(two_ranks, "pooled-nan")
    full, _ = ranks(two_ranks, "pooled-full")
    assert nan["step"] == full["step"]
    student = nan["state"]["student"]
    assert all(torch.isfinite(v).all() for v in student.values())
    assert any(not torch.allclose(v, full["state"]["student"][k]) for k, v in student.items())


def test_a_global_batch_the_ranks_cannot_share_is_one_line():
    with pytest.raises(EdgesrError, match=r"^recipe key batch_size: 6 is the global batch, split across "
                                          r"4 processes: give a multiple of 4$"):
        Distiller(tiny_recipe(batch_size=6, cmi={"bank_size": 12}), tiny_teacher(), CPU, world=World(rank=1, size=4))


def test_each_rank_takes_the_gpu_of_its_local_rank_or_the_cpu():
    world = World(rank=3, size=4, local_rank=1)
    assert resolve_device("cpu", world) == CPU
    with pytest.raises(EdgesrError, match="give --device cuda"):
        resolve_device("cuda:0", world)
    if not torch.cuda.is_available():
        assert resolve_device("auto", world) == CPU


# ------------------------------------------------------------------------- the real command
TINY = ("name: tiny\nbatch_size: 4\nstudent_steps_per_gen_step: 2\nscales: [2, 4]\n"
        "student: {width: 4, depth: 6}\nstudent_optim: {name: sgd, lr: 0.01}\n"
        "generator: {lr_sizes: [8, 8], channels: 8, z_dim: 16}\n"
        "cmi: {bank_size: 8, negatives: 4, head_dim: 8}\nprogressive: {stages: 2, steps: [30]}\n"
        "validation: {data: null}\nevaluation: {sets: []}\ncheckpoint_every: 5\nlog_every: 5\n")
TINY_STEPS = 60  # two stages of 30: SIGTERM comes after the first checkpoint (step 5), well before


def _distill_args(tmp_path: Path) -> list[str]:
    teacher = tmp_path / "teacher.safetensors"
    save_safetensors(tiny_teacher(), teacher)
    (tmp_path / "tiny.yaml").write_text(TINY)
    return ["-m", "edgesr", "distill", "--recipe", str(tmp_path / "tiny.yaml"), "--teacher", str(teacher),
            "--out", str(tmp_path / "runs"), "--device", "cpu"]


def _wait_for(path: Path, procs: list[subprocess.Popen], seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists() and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    assert path.exists(), [p.communicate()[1][-2000:] for p in procs]


def test_torchrun_sigterm_checkpoints_once_stops_every_rank_and_resumes_on_one_process(tmp_path):
    args = _distill_args(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120", "EDGESR_DIST_TIMEOUT": "60"}
    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                                 *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    run = tmp_path / "runs" / "tiny"
    _wait_for(run / CHECKPOINT_FILE, [launcher])
    sent = time.time()
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=90)
    both = out + err
    assert launcher.returncode != 0
    assert time.time() - sent < 25, "the ranks did not stop before torchrun's 30 s grace ran out"
    said = [ln for ln in both.splitlines() if "SIGTERM at step" in ln]
    assert len(said) == 1 and said[0].startswith("stopped: SIGTERM at step"), both[-3000:]
    assert f"checkpoint saved; continue with {shlex.quote(sys.executable)} -m edgesr distill --resume" in said[0]
    step = load_checkpoint(run / CHECKPOINT_FILE)["step"]
    assert f"SIGTERM at step {step}:" in said[0] and 0 < step < TINY_STEPS
    # no frame of edgesr's own code (torchrun's traceback of its agent is its own); the package's
    # folder, not the word, since a checkout may itself be called edgesr
    package = str(ROOT / "edgesr") + "/"
    assert package not in "".join(ln for ln in both.splitlines() if ln.lstrip().startswith("File")), both[-3000:]

    distill(resume=run, console=Console(quiet=True))  # one process, this one
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == TINY_STEPS and results["processes"] == 1
    logged = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == sorted(set(logged)) and logged[-1] == TINY_STEPS  # rank 0 alone wrote the log, once per line


def test_torchrun_prints_each_line_once(tmp_path):
    """The README's CPU torchrun example printed its closing lines once per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGESR_DIST_TIMEOUT": "60"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        *_distill_args(tmp_path)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    for start in ("done in ", "1 CPU thread (OMP_NUM_THREADS)", "student: "):
        assert sum(ln.startswith(start) for ln in lines) == 1, (start, r.stdout)


def test_a_rank_that_dies_stops_the_other_with_one_line(two_ranks):
    """Rank 1 was killed (SIGKILL) in the middle of a run: rank 0 raised one line, long before
    the collective timeout (60 s here), instead of hanging."""
    record = json.loads((two_ranks / "rank-lost" / "rank0.json").read_text())
    assert record["message"].startswith("rank 0: another process of this run died or stopped answering (")
    assert record["message"].endswith("the run's last checkpoint is kept") and "\n" not in record["message"]
    assert record["seconds"] < 30


def test_the_cli_ends_a_process_that_lost_a_rank_without_the_interpreters_shutdown():
    """After printing a RankLost, the process ends at once with exit code 1: gloo's threads may
    still drop failed work, and in the interpreter's shutdown that aborts the process. An atexit
    handler (run first in a shutdown) shows whether the shutdown ran."""
    code = ("import atexit, sys\n"
            "from edgesr.cli import user_errors\n"
            "from edgesr.train.distributed import RankLost\n"
            "atexit.register(print, 'shutdown ran')\n"
            "print('before', flush=False)\n"
            "user_errors(lambda: (_ for _ in ()).throw(RankLost('rank 0: another process died')))()\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == "error: rank 0: another process died"
    assert r.stdout == "before\n"  # flushed before the end, and no shutdown after it
