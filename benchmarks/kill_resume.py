"""kill -9 at random points of a tiny ``edgesr distill`` run, then ``--resume``: does every
resumed run end exactly where an uninterrupted one does, with nothing left behind?

    python benchmarks/kill_resume.py [--trials 20] [--seed 0] [--steps 24]

Two tiny recipes (see :func:`recipe`), trials alternating between them. One uninterrupted
reference run of each, then per trial a fresh run of the same recipe, SIGKILLed once the run
folder exists and ``target`` steps are logged, plus a fraction of a step (for each recipe, one
random point in each of ``trials / 2`` equal parts of the run, tenths by default, so kills land
before the first checkpoint, inside steps and between them; in every fourth part the kill then
waits for the next atomic write, mostly a checkpoint's, and lands inside it), then
``edgesr distill --resume`` to the end.

Each trial checks: the resume exits 0; the student and generators are bit-identical to the
reference's; ``metrics.jsonl`` has the reference's steps, each once, and the same values (all
but wall time); no temporary file remains. It also records what the kill left (a temporary of
an atomic write, a cut log line, the checkpoint step). Everything runs in subprocesses with
``OMP_NUM_THREADS=1``, as a user's would.

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


def recipe(teacher: Path, steps: int, variant: str) -> dict:
    """A distillation small enough to run in seconds on a CPU, with checkpoints big enough
    (a few MB: wide generators) that kills land inside their writes too. ``generators``: the
    paper's method (generators + CMI, a student grown in two stages); ``pool``: the quick
    recipe's path (teacher-refit init, a dead-leaves pool with cached teacher outputs) with half
    of each batch from the generators, so both sources and their RNG streams are exercised."""
    common = {
        "name": "tiny", "teacher": str(teacher), "device": "cpu", "seed": 0,
        "batch_size": 4, "student_steps_per_gen_step": 2, "scales": [2, 4],
        "student_optim": {"name": "sgd", "lr": 0.01, "clip_grad_norm": 0.4},
        "generator": {"lr_sizes": [8, 8], "channels": 64, "z_dim": 256,
                      "optim": {"name": "adam", "lr": 0.001, "schedule": "constant"}},
        "cmi": {"bank_size": 8, "negatives": 4, "head_dim": 8},
        "validation": {"data": None}, "evaluation": {"sets": []},
        "checkpoint_every": 3, "log_every": 1,
    }
    if variant == "generators":
        return {**common, "student": {"width": 4, "depth": 6}, "progressive": {"stages": 2, "steps": [steps // 2]}}
    return {**common, "student": {"width": 4, "depth": 6, "init": "teacher-refit"},
            "samples": {"priors": ["dead-leaves"], "pool_images": 4, "pool_size": 24, "patch": 16,
                        "generator_share": 0.5},
            "progressive": {"stages": 1, "steps": [steps]}}


VARIANTS = ("generators", "pool")


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
    ap.add_argument("--steps", type=int, default=24, help="student steps of each tiny run")
    ap.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill_resume."))
    torch.manual_seed(123)
    teacher = work / "teacher.safetensors"
    save_safetensors(VDSR(8, depth=6), teacher)

    refs: dict[str, dict] = {}
    for variant in VARIANTS:
        write_text(work / f"{variant}.yaml", json.dumps(recipe(teacher, args.steps, variant)))
        t0 = time.perf_counter()
        ref = edgesr("distill", "--recipe", f"{variant}.yaml", "--out", f"reference-{variant}", cwd=work)
        if ref.wait() != 0:
            raise SystemExit(f"reference run failed: {ref.stderr.read()}")
        run = work / f"reference-{variant}" / "tiny"
        seconds = json.loads((run / "results.json").read_text())["seconds"]
        refs[variant] = {"log": [comparable(ln) for ln in lines(run / "metrics.jsonl")], "weights": weights(run),
                         "train_seconds": seconds, "step_seconds": seconds / args.steps}
        print(f"reference {variant}: {args.steps} steps, {seconds:.2f} s of training "
              f"({time.perf_counter() - t0:.1f} s with start-up)")

    trials = []
    per_variant = -(-args.trials // len(VARIANTS))  # strata per recipe
    for i in range(args.trials):
        variant, stratum = VARIANTS[i % len(VARIANTS)], i // len(VARIANTS)
        ref = refs[variant]
        in_write = stratum % 4 == 3
        left: dict = {}
        while not left:  # a run that finished before its kill is drawn again
            # stratified: the kill point is uniform in the stratum-th of ``per_variant`` equal
            # parts of the run, so each variant's points cover it from before the first
            # checkpoint to the end
            point = (stratum + rng.random()) * args.steps / per_variant
            target, fraction = int(point), point - int(point)
            shutil.rmtree(work / f"trial{i:02d}", ignore_errors=True)
            proc = edgesr("distill", "--recipe", f"{variant}.yaml", "--out", f"trial{i:02d}", cwd=work)
            run = work / f"trial{i:02d}" / "tiny"
            left = kill_at(run, target, fraction, ref["step_seconds"], proc, in_write)
        resumed = edgesr("distill", "--resume", str(run.relative_to(work)), cwd=work)
        code = resumed.wait()
        err = resumed.stderr.read().strip()
        row = {"trial": i, "variant": variant, "target_step": target, "step_fraction": round(fraction, 3),
               "kill_inside_a_write": in_write, **left, "resume_exit": code}
        if code == 0:
            got = weights(run)
            diff = max(float((got[k] - v).abs().max()) for k, v in ref["weights"].items())
            log = [comparable(ln) for ln in lines(run / "metrics.jsonl")]
            steps = [r["step"] for r in log]
            row.update({"max_weight_diff": diff, "same_keys": got.keys() == ref["weights"].keys(),
                        "log_same_as_reference": log == ref["log"],
                        "duplicated_log_lines": len(steps) - len(set(steps)),
                        "temporaries_after": [p.name for p in stale_temporaries(run)]})
        else:
            row["error"] = err[-300:]
        row["ok"] = (code == 0 and row["max_weight_diff"] == 0.0 and row["same_keys"] and row["log_same_as_reference"]
                     and row["duplicated_log_lines"] == 0 and not row["temporaries_after"])
        trials.append(row)
        print(f"trial {i:2d} ({variant}): killed after step {left['logged_at_kill']:2d} (checkpoint "
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
        "steps": args.steps, "checkpoint_every": 3, "variants": list(VARIANTS),
        "train_seconds_reference": {v: r["train_seconds"] for v, r in refs.items()},
        "seed": args.seed, "load_average_at_end": os.getloadavg()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "kill_resume.json", {"summary": summary, "trials": trials})
    md = ["# kill -9 then --resume (benchmarks/kill_resume.py)", "",
          f"{summary['ok']} of {summary['trials']} trials end bit-identical to the uninterrupted run with the "
          f"same log and nothing left behind. Tiny distillation, {args.steps} student steps, a checkpoint "
          f"every 3, CPU, OMP_NUM_THREADS=1 (load average {summary['load_average_at_end']:.1f} at the end), "
          "alternating two recipes: `generators` (generators + CMI, student grown in two stages) and `pool` "
          "(teacher-refit init, dead-leaves pool, half of each batch from the generators).", "",
          f"- kills that left a temporary of an atomic write: {summary['kills_that_left_a_temporary']}",
          f"- kills that cut a log line in half: {summary['kills_that_cut_a_log_line']}",
          f"- kills before the first checkpoint: {summary['kills_before_the_first_checkpoint']}",
          f"- after resume: duplicated log lines {summary['duplicated_log_lines']}, temporaries "
          f"{summary['temporaries_after_resume']}", "",
          "| trial | recipe | killed after step | waited for a write | checkpoint at kill | temporaries at kill "
          "| cut line | resume | max abs weight diff | log = reference | ok |",
          "|---:|:---|---:|:---:|---:|:---|:---:|---:|---:|:---:|:---:|"]
    for t in trials:
        md.append(f"| {t['trial']} | {t['variant']} | {t['logged_at_kill']} | "
                  f"{'yes' if t['kill_inside_a_write'] else ''} | "
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
