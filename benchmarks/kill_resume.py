"""kill -9 at random points of a tiny ``edgesr distill`` run, then ``--resume``: does every
resumed run end exactly where an uninterrupted one does, with nothing left behind?

    python benchmarks/kill_resume.py [--trials 20] [--seed 0] [--steps 24]

One uninterrupted reference run, then per trial a fresh run of the same recipe, SIGKILLed
once the run folder exists and ``target`` steps are logged, plus a fraction of a step (one
random point in each twentieth of the run, so kills land before the first checkpoint, inside
steps and between them; every fourth trial then waits for the next atomic write, mostly a
checkpoint's, and kills inside it), then
``edgesr distill --resume`` to the end. Each trial checks: the resume exits 0; the student and
generators are bit-identical to the reference's; ``metrics.jsonl`` has the reference's steps,
each once, and the same values (all but wall time); no temporary file remains. It also
records what the kill left (a temporary of an atomic write, a cut log line, the checkpoint
step). Everything runs in subprocesses with ``OMP_NUM_THREADS=1``, as a user's would.

Writes benchmarks/results/kill_resume.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgesr.io import stale_temporaries, write_json, write_text
from edgesr.models.formats import read_weights, save_safetensors
from edgesr.models.vdsr import VDSR

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def recipe(teacher: Path, steps: int) -> dict:
    """A distillation small enough to run in seconds on a CPU, with checkpoints big enough
    (a few MB: wide generators) that kills land inside their writes too."""
    return {
        "name": "tiny", "teacher": str(teacher), "device": "cpu", "seed": 0,
        "batch_size": 4, "student_steps_per_gen_step": 2, "scales": [2, 4],
        "student": {"width": 4, "depth": 6},
        "student_optim": {"name": "sgd", "lr": 0.01, "clip_grad_norm": 0.4},
        "generator": {"lr_sizes": [8, 8], "channels": 64, "z_dim": 256,
                      "optim": {"name": "adam", "lr": 0.001, "schedule": "constant"}},
        "cmi": {"bank_size": 8, "negatives": 4, "head_dim": 8},
        "progressive": {"stages": 2, "steps": [steps // 2]},
        "validation": {"data": None}, "evaluation": {"sets": []},
        "checkpoint_every": 3, "log_every": 1,
    }


def edgesr(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen([sys.executable, "-m", "edgesr", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.is_file() else []


def comparable(line: str) -> dict:
    record = json.loads(line)
    record.pop("time", None)
    return record


def weights(run: Path) -> dict[str, torch.Tensor]:
    student = read_weights(run / "student.safetensors")[0]
    from safetensors.torch import load_file

    return {**{f"student.{k}": v for k, v in student.items()},
            **{f"gens.{k}": v for k, v in load_file(run / "generators.safetensors").items()}}


def kill_at(run: Path, target: int, fraction: float, step_seconds: float, proc: subprocess.Popen,
            in_write: bool) -> dict:
    """SIGKILL ``proc`` once ``run`` has a recipe and ``target`` logged steps, ``fraction`` of a
    step later (``in_write``: then at the first moment a temporary of an atomic write, mostly a
    checkpoint's, is in the folder); what it left behind."""
    while not ((run / "recipe.yaml").is_file() and len(lines(run / "metrics.jsonl")) >= target):
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended before step {target}: {proc.stderr.read()[-400:]}")
        time.sleep(0.001)
    time.sleep(fraction * step_seconds)
    while in_write and not stale_temporaries(run) and proc.poll() is None:
        pass  # busy: a checkpoint write lasts milliseconds
    if proc.poll() is not None:
        return {}  # it finished first: no kill to test
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log = lines(run / "metrics.jsonl")
    whole = []
    for ln in log:
        try:
            whole.append(json.loads(ln)["step"])
        except ValueError:
            pass
    checkpoint = None
    if (run / "checkpoint.pt").is_file():
        checkpoint = int(torch.load(run / "checkpoint.pt", weights_only=True)["step"])
    return {"logged_at_kill": max(whole, default=0), "checkpoint_at_kill": checkpoint,
            "temporaries_at_kill": [p.name for p in stale_temporaries(run)],
            "cut_line_at_kill": len(whole) != len(log)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=24, help="student steps of the tiny run (two stages)")
    ap.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill_resume."))
    torch.manual_seed(123)
    teacher = work / "teacher.safetensors"
    save_safetensors(VDSR(8, depth=6), teacher)
    write_text(work / "tiny.yaml", json.dumps(recipe(teacher, args.steps)))

    t0 = time.perf_counter()
    ref = edgesr("distill", "--recipe", "tiny.yaml", "--out", "reference", cwd=work)
    if ref.wait() != 0:
        raise SystemExit(f"reference run failed: {ref.stderr.read()}")
    reference = work / "reference" / "tiny"
    ref_seconds = time.perf_counter() - t0
    ref_log = [comparable(ln) for ln in lines(reference / "metrics.jsonl")]
    ref_weights = weights(reference)
    train_seconds = json.loads((reference / "results.json").read_text())["seconds"]
    step_seconds = train_seconds / args.steps
    print(f"reference: {args.steps} steps, {train_seconds:.2f} s of training ({ref_seconds:.1f} s with start-up)")

    trials = []
    for i in range(args.trials):
        left: dict = {}
        while not left:  # a run that finished before its kill is drawn again
            # stratified: trial i's kill point is uniform in the i-th of ``trials`` equal parts of
            # the run, so the 20 points cover it from before the first checkpoint to the end
            point = (i + rng.random()) * args.steps / args.trials
            target, fraction = int(point), point - int(point)
            shutil.rmtree(work / f"trial{i:02d}", ignore_errors=True)
            proc = edgesr("distill", "--recipe", "tiny.yaml", "--out", f"trial{i:02d}", cwd=work)
            run = work / f"trial{i:02d}" / "tiny"
            left = kill_at(run, target, fraction, step_seconds, proc, in_write=i % 4 == 3)
        resumed = edgesr("distill", "--resume", str(run.relative_to(work)), cwd=work)
        code = resumed.wait()
        err = resumed.stderr.read().strip()
        row = {"trial": i, "target_step": target, "step_fraction": round(fraction, 3),
               "kill_inside_a_write": i % 4 == 3, **left, "resume_exit": code}
        if code == 0:
            got = weights(run)
            diff = max(float((got[k] - v).abs().max()) for k, v in ref_weights.items())
            log = [comparable(ln) for ln in lines(run / "metrics.jsonl")]
            steps = [r["step"] for r in log]
            row.update({"max_weight_diff": diff, "same_keys": got.keys() == ref_weights.keys(),
                        "log_same_as_reference": log == ref_log,
                        "duplicated_log_lines": len(steps) - len(set(steps)),
                        "temporaries_after": [p.name for p in stale_temporaries(run)]})
        else:
            row["error"] = err[-300:]
        row["ok"] = (code == 0 and row["max_weight_diff"] == 0.0 and row["same_keys"] and row["log_same_as_reference"]
                     and row["duplicated_log_lines"] == 0 and not row["temporaries_after"])
        trials.append(row)
        print(f"trial {i:2d}: killed after step {left['logged_at_kill']:2d} (checkpoint "
              f"{left['checkpoint_at_kill']}, temporaries {len(left['temporaries_at_kill'])}, cut line "
              f"{left['cut_line_at_kill']}) -> resume exit {code}, "
              + (f"max |dw| {row['max_weight_diff']:g}, log same {row['log_same_as_reference']}, "
                 f"temporaries after {len(row['temporaries_after'])}" if code == 0 else err[-200:]))

    summary = {
        "trials": len(trials), "ok": sum(t["ok"] for t in trials),
        "bit_identical_weights": sum(t.get("max_weight_diff") == 0.0 for t in trials),
        "logs_identical": sum(bool(t.get("log_same_as_reference")) for t in trials),
        "duplicated_log_lines": sum(t.get("duplicated_log_lines", 0) for t in trials),
        "temporaries_after_resume": sum(len(t.get("temporaries_after", [])) for t in trials),
        "kills_that_left_a_temporary": sum(bool(t["temporaries_at_kill"]) for t in trials),
        "kills_that_cut_a_log_line": sum(t["cut_line_at_kill"] for t in trials),
        "kills_before_the_first_checkpoint": sum(t["checkpoint_at_kill"] is None for t in trials),
        "steps": args.steps, "checkpoint_every": 3, "train_seconds_reference": train_seconds,
        "seed": args.seed, "load_average_at_end": os.getloadavg()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "kill_resume.json", {"summary": summary, "trials": trials})
    md = ["# kill -9 then --resume (benchmarks/kill_resume.py)", "",
          f"{summary['ok']} of {summary['trials']} trials end bit-identical to the uninterrupted run with the "
          f"same log and nothing left behind. Tiny distillation: {args.steps} student steps, a checkpoint "
          f"every 3, CPU, OMP_NUM_THREADS=1 (load average {summary['load_average_at_end']:.1f} at the end).", "",
          f"- kills that left a temporary of an atomic write: {summary['kills_that_left_a_temporary']}",
          f"- kills that cut a log line in half: {summary['kills_that_cut_a_log_line']}",
          f"- kills before the first checkpoint: {summary['kills_before_the_first_checkpoint']}",
          f"- after resume: duplicated log lines {summary['duplicated_log_lines']}, temporaries "
          f"{summary['temporaries_after_resume']}", "",
          "| trial | killed after step | waited for a write | checkpoint at kill | temporaries at kill | cut line "
          "| resume | max abs weight diff | log = reference | ok |",
          "|---:|---:|:---:|---:|:---|:---:|---:|---:|:---:|:---:|"]
    for t in trials:
        md.append(f"| {t['trial']} | {t['logged_at_kill']} | {'yes' if t['kill_inside_a_write'] else ''} | "
                  f"{t['checkpoint_at_kill']} | {', '.join(t['temporaries_at_kill'])} | "
                  f"{'yes' if t['cut_line_at_kill'] else ''} | {t['resume_exit']} | "
                  f"{t.get('max_weight_diff', '—')} | {t.get('log_same_as_reference', '—')} | {t['ok']} |")
    write_text(RESULTS / "kill_resume.md", "\n".join(md) + "\n")
    print(f"{summary['ok']}/{summary['trials']} ok; wrote {RESULTS / 'kill_resume.json'} and .md")
    if args.keep:
        print(f"run folders kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
