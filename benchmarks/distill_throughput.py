"""Student steps per second of distillation recipes on this machine (CPU by default),
measured on the real training step (``benchmarks/table1.py`` uses :func:`measure` too).

    python benchmarks/distill_throughput.py --recipes quick --seconds 60 [--device cpu] [--threads 2] [--compile]

Prints a table and writes benchmarks/results/distill_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from edgesr.config import load_recipe
from edgesr.distill.recipe import DistillRecipe
from edgesr.distill.trainer import Distiller
from edgesr.models.vdsr import VDSR
from edgesr.models.zoo import load_model
from edgesr.train.command import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(recipe: DistillRecipe, teacher: VDSR, device: torch.device, seconds: float = 10.0,
            warmup_cycles: int = 1, compiled: bool = False) -> dict[str, float]:
    """Run whole training cycles for about ``seconds`` after a warm-up; report the rate.

    Whole cycles (``student_steps_per_gen_step`` student steps + one generator step) are timed,
    so the generator and CMI costs are included in proportion. ``compiled``: the student step's
    forward through ``torch.compile`` (compiled during the warm-up, which is not timed).
    """
    d = Distiller(recipe, teacher, device)
    if compiled:
        d.ddp_student = torch.compile(d.ddp_student)
    # the sample pool and the teacher's outputs on it, as a run prepares them; as for a resumed
    # run, without the refit: the student's weights do not change the step's cost
    d.begin(resumed=True)
    k = recipe.student_steps_per_gen_step

    def cycle() -> None:
        for _ in range(k):
            d.train_step()
            d.step += 1

    for _ in range(max(warmup_cycles, 1)):
        cycle()
    _sync(device)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or steps == 0:
        cycle()
        steps += k
        _sync(device)
    elapsed = time.perf_counter() - start
    rate = steps / elapsed
    return {"steps_per_second": rate, "patches_per_second": rate * recipe.batch_size,
            "steps": steps, "seconds": elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["quick"])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides for every recipe")
    ap.add_argument("--compile", action="store_true", help="also time each recipe with the student under torch.compile")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "distill_throughput.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = []
    for name in args.recipes:
        recipe = load_recipe(DistillRecipe, name, args.set)
        teacher, _ = load_model(recipe.teacher)
        for compiled in (False, True) if args.compile else (False,):
            rows.append({"recipe": name, "compiled": compiled, "batch_size": recipe.batch_size,
                         **measure(recipe, teacher, device, args.seconds, compiled=compiled)})
    table = Table(title=f"distillation throughput on {device} ({platform.processor() or platform.machine()}, "
                        f"{torch.get_num_threads()} threads)")
    for col in ("recipe", "student", "batch", "student steps/s", "patches/s", "measured over"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["recipe"], "torch.compile" if r["compiled"] else "eager", str(r["batch_size"]),
                      f"{r['steps_per_second']:.3f}",
                      f"{r['patches_per_second']:.1f}", f"{r['steps']} steps / {r['seconds']:.0f} s")
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                                     "torch": torch.__version__, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
