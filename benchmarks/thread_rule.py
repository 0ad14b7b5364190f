"""Does the thread rule (edgesr/threads.py) pick the faster thread count, both while other
CPU-bound processes run and right after they end?

Two phases, each asking the rule what a command started at that moment would choose and then
measuring the distillation step rate of a recipe at 1 and 2 torch threads, interleaved (1, 2,
1, 2, ...) so that a change in the machine's load hits both alike:

1. **busy**: ``--busy N`` CPU-bound processes (a pure-Python loop each; default: one per core)
   run beside the measurement; the rule is asked ``--settle`` seconds after they start;
2. **after**: they are stopped, and the rule is asked ``--after`` seconds later, when the
   1-minute load average still remembers them (the situation right after the README's test
   command or an install); then the rates on the quiet machine.

Each phase records the load average and what the previous rule (cores minus the 1-minute load
average) would have chosen. Writes benchmarks/results/thread_rule.{json,md}.

    python benchmarks/thread_rule.py --recipe quick --seconds 30 --rounds 2 --set samples.pool_images=8

On a shared machine, other people's jobs count as busy too: run it where nothing else does.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import torch
from distill_throughput import measure  # the script beside this one

from edgesr import threads
from edgesr.config import load_recipe
from edgesr.distill.recipe import DistillRecipe
from edgesr.models.zoo import load_model

RESULTS = Path(__file__).parent / "results"


def _busy(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def ask_rule() -> dict:
    """What a command started now would choose, beside what the load-average rule would have."""
    load = os.getloadavg()[0]
    busy = threads.busy_cores()
    choice = threads.choose()
    cores = threads.usable_cores()
    return {"load_average_1min": round(load, 2), "busy_cores_sampled": None if busy is None else round(busy, 2),
            "rule_chose": choice.threads, "rule_reason": choice.reason,
            "load_average_rule_would_choose": threads.free_threads(cores, load)}


def rates(recipe: DistillRecipe, teacher, seconds: float, rounds: int, phase: str) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for n in (1, 2):
            torch.set_num_threads(n)
            out[n].append(measure(recipe, teacher, torch.device("cpu"), seconds)["steps_per_second"])
            print(f"{phase}, round {r + 1}: {n} thread(s): {out[n][-1]:.3f} steps/s", flush=True)
    return out


def phase_result(asked: dict, measured: dict[int, list[float]]) -> dict:
    mean = {n: sum(v) / len(v) for n, v in measured.items()}
    faster = max(mean, key=mean.get)
    return {**asked, "steps_per_second": {str(n): [round(v, 3) for v in vs] for n, vs in measured.items()},
            "mean_steps_per_second": {str(n): round(v, 3) for n, v in mean.items()},
            "faster": faster, "rule_right": asked["rule_chose"] == faster}


def markdown(out: dict) -> str:
    lines = [f"# Thread rule: {out['cores']} cores, recipe {out['recipe']}", "",
             f"`{out['command']}`; {out['seconds_per_measure']:g} s per measurement, {out['rounds']} interleaved "
             f"rounds; {out['busy_processes']} CPU-bound processes in the busy phase, stopped "
             f"{out['after_seconds']:g} s before the rule was asked in the after phase; before the run, "
             f"{out['background_busy_cores']} cores were busy with other processes.", "",
             "| phase | 1-min load average | cores busy now (sampled 0.5 s) | rule chose | load-average rule "
             "would choose | steps/s, 1 thread | steps/s, 2 threads | faster |", "|---|---|---|---|---|---|---|---|"]
    for name in ("busy", "after"):
        p = out[name]
        s = p["mean_steps_per_second"]
        lines.append(f"| {name} | {p['load_average_1min']:.2f} | {p['busy_cores_sampled']} | {p['rule_chose']} | "
                     f"{p['load_average_rule_would_choose']} | {s['1']:.3f} | {s['2']:.3f} | {p['faster']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="quick")
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides (the pool's size does not change a "
                    "step's cost, only the preparation's)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--busy", type=int, default=None, help="CPU-bound processes in the busy phase [default: one "
                    "per core]")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds between starting them and asking the rule")
    ap.add_argument("--after", type=float, default=1.0, help="seconds between stopping them and asking the rule")
    ap.add_argument("--json", default=str(RESULTS / "thread_rule.json"))
    ap.add_argument("--markdown", default=str(RESULTS / "thread_rule.md"))
    args = ap.parse_args()
    os.environ.pop("OMP_NUM_THREADS", None)  # the rule's own choice, not the environment's

    recipe = load_recipe(DistillRecipe, args.recipe, [*args.set, "device=cpu"])
    teacher, _ = load_model(recipe.teacher)
    cores = threads.usable_cores()
    n_busy = cores if args.busy is None else args.busy
    background = threads.busy_cores(2.0)  # other people's jobs: the rule counts them too
    print(f"before: {background:.2f} cores busy with other processes", flush=True)
    stop_at = time.time() + 3600
    busy = [mp.Process(target=_busy, args=(stop_at,), daemon=True) for _ in range(n_busy)]
    for p in busy:
        p.start()
    try:
        time.sleep(args.settle)
        asked_busy = ask_rule()
        print("busy:", asked_busy, flush=True)
        busy_rates = rates(recipe, teacher, args.seconds, args.rounds, "busy")
    finally:
        for p in busy:
            p.terminate()
        for p in busy:
            p.join()
    time.sleep(args.after)
    asked_after = ask_rule()
    print("after:", asked_after, flush=True)
    after_rates = rates(recipe, teacher, args.seconds, args.rounds, "after")

    out = {"recipe": args.recipe, "command": "python benchmarks/thread_rule.py " + " ".join(sys.argv[1:]),
           "cores": cores, "cpu": platform.processor() or platform.machine(), "busy_processes": n_busy,
           "seconds_per_measure": args.seconds, "rounds": args.rounds, "settle_seconds": args.settle,
           "after_seconds": args.after, "background_busy_cores": round(background, 2),
           "busy": phase_result(asked_busy, busy_rates),
           "after": phase_result(asked_after, after_rates), "load_average_at_end": list(os.getloadavg())}
    print(json.dumps(out, indent=1))
    for path, text in ((args.json, json.dumps(out, indent=1) + "\n"), (args.markdown, markdown(out))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    print(markdown(out))


if __name__ == "__main__":
    main()
