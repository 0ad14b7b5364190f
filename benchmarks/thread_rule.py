"""Does the thread rule (edgesr/threads.py) pick the faster thread count? Distillation step rate
of a recipe at 1 and 2 torch threads, interleaved (1, 2, 1, 2, ...) so that a change in the
machine's load hits both alike, optionally beside ``--busy N`` CPU-bound processes started here
(a pure-Python busy loop each). Prints the rates and writes benchmarks/results/thread_rule.json
(thread_rule_busy<N>.json with ``--busy N``).

    python benchmarks/thread_rule.py --recipe quick --seconds 40 --rounds 2 [--busy 1] [--set samples.pool_images=8]

The rule reads the 1-minute load average, which follows a new process with a time constant of
a minute: with ``--busy`` the rule is asked after ``--settle`` seconds (default 60), as a run
started on an already busy machine would be. The load average is recorded before and after:
on a shared machine, say what else ran.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="quick")
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides (the pool's size does not change a "
                    "step's cost, only the preparation's)")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--busy", type=int, default=0, help="CPU-bound processes to run beside the measurement")
    ap.add_argument("--settle", type=float, default=None, help="seconds between starting them and asking the "
                    "rule (default: 60 with --busy, else 0)")
    ap.add_argument("--json", default=None, help="[default: benchmarks/results/thread_rule[_busy<N>].json]")
    args = ap.parse_args()

    recipe = load_recipe(DistillRecipe, args.recipe, [*args.set, "device=cpu"])
    teacher, _ = load_model(recipe.teacher)
    stop_at = time.time() + 3600
    busy = [mp.Process(target=_busy, args=(stop_at,), daemon=True) for _ in range(args.busy)]
    for p in busy:
        p.start()
    time.sleep(args.settle if args.settle is not None else 60 if busy else 0)
    load_before = os.getloadavg()
    os.environ.pop("OMP_NUM_THREADS", None)
    rule = threads.choose()  # what edgesr would choose right now
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        for r in range(args.rounds):
            for n in (1, 2):
                torch.set_num_threads(n)
                rates[n].append(measure(recipe, teacher, torch.device("cpu"), args.seconds)["steps_per_second"])
                print(f"round {r + 1}: {n} thread(s): {rates[n][-1]:.3f} steps/s", flush=True)
    finally:
        for p in busy:
            p.terminate()
    load_after = os.getloadavg()
    best = max(rates, key=lambda n: sum(rates[n]))
    out = {"recipe": args.recipe, "busy_processes": args.busy, "seconds_per_measure": args.seconds,
           "command": "python benchmarks/thread_rule.py " + " ".join(sys.argv[1:]),
           "rounds": args.rounds, "cores": threads.usable_cores(), "cpu": platform.processor() or platform.machine(),
           "load_average_before": [round(v, 2) for v in load_before],
           "load_average_after": [round(v, 2) for v in load_after],
           "steps_per_second": {str(n): [round(v, 3) for v in vs] for n, vs in rates.items()},
           "faster": best, "rule_chose": rule.threads, "rule_reason": rule.reason}
    print(json.dumps(out, indent=1))
    path = Path(args.json or RESULTS / f"thread_rule{f'_busy{args.busy}' if args.busy else ''}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
