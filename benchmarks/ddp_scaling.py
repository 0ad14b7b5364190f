"""Data-parallel scaling of ``edgesr distill``: student steps/s and samples/s on 1 and N
processes started by torchrun, and the bytes each rank hands to collectives per step.

    python benchmarks/ddp_scaling.py --processes 1 2 --seconds 30 [--device cpu] [--threads 1]

Each process count is one ``torchrun --standalone --nproc-per-node N`` of this script
(``--worker``) training the real :class:`~edgesr.distill.trainer.Distiller` with the same
recipe and the same global batch (so N processes each train on ``batch_size / N`` rows):
one warm-up cycle, then as many whole cycles (``student_steps_per_gen_step`` student steps and
one generator step) as fill ``--seconds``. On the CPU each process gets ``--threads`` threads,
so N processes use N times the cores of one: the speed-up shows what the collectives and the
smaller per-rank batch cost, not a faster machine. On GPUs (NCCL) each process takes the GPU of
its local rank.

The communication volume is counted, not estimated: ``World.traffic`` adds up the bytes of
every tensor a rank hands to a collective, DDP's gradient buckets included (the payload; a
ring all-reduce moves ``2 (N-1)/N`` times it over each link). Student steps and generator
steps are counted apart, since the generator step also reduces the generator's and the CMI
head's gradients and gathers the CMI features of every rank.

The default recipe is ``paper`` (its networks, so its gradient volumes) with a smaller batch
and a shorter cycle, to fit a CPU: the gathered CMI features are the only traffic that grows
with the batch, and the JSON gives them per gathered row. Writes
``benchmarks/results/ddp_scaling.{json,md}`` with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DEFAULT_SET = ["batch_size=8", "student_steps_per_gen_step=4"]


def worker(args: argparse.Namespace) -> None:
    """One rank: train whole cycles, time them, count the bytes; rank 0 writes the numbers."""
    import torch

    from edgesr.config import load_recipe
    from edgesr.distill.recipe import DistillRecipe
    from edgesr.distill.trainer import Distiller
    from edgesr.models.zoo import load_model
    from edgesr.train.command import resolve_device
    from edgesr.train.distributed import join_world

    torch.set_num_threads(args.threads)
    with join_world() as world:
        recipe = load_recipe(DistillRecipe, args.recipe, args.set)
        teacher, _ = load_model(recipe.teacher)
        device = resolve_device(args.device, world)
        torch.manual_seed(recipe.seed)
        d = Distiller(recipe, teacher, device, world=world)
        d.begin(False)
        world.broadcast_(d.networks())
        k = recipe.student_steps_per_gen_step if d.gens else 1

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        student_bytes, gen_bytes = Counter(), Counter()
        student_steps = gen_steps = 0

        def cycle() -> None:
            nonlocal student_steps, gen_steps
            for _ in range(k):
                with_gen = bool(d.gens) and (d.step + 1) % k == 0
                before = Counter(world.traffic)
                d.train_step()
                d.step += 1
                spent = Counter(world.traffic)
                spent.subtract(before)
                (gen_bytes if with_gen else student_bytes).update(+spent)  # (+: drops the zeros)
                gen_steps += with_gen
                student_steps += not with_gen

        started = time.perf_counter()
        cycle()  # warm-up: allocations, DDP's bucket rebuild
        sync()
        warm = time.perf_counter() - started
        # every rank runs the same number of cycles: rank 0's estimate from the warm-up
        cycles = int(world.max(float(max(1, round(args.seconds / max(warm, 1e-6)))) if world.main else 0.0)[0])
        world.barrier()
        student_bytes.clear()
        gen_bytes.clear()
        student_steps = gen_steps = 0
        started = time.perf_counter()
        for _ in range(cycles):
            cycle()
        sync()
        world.barrier()
        elapsed = time.perf_counter() - started
        if not world.main:
            return
        steps = cycles * k
        rows = recipe.batch_size // world.size
        per_student = {kind: b / max(student_steps, 1) for kind, b in student_bytes.items()}
        per_gen = {kind: b / max(gen_steps, 1) for kind, b in gen_bytes.items()}
        total = {kind: (student_bytes[kind] + gen_bytes[kind]) / steps for kind in {*student_bytes, *gen_bytes}}
        result = {
            "processes": world.size, "device": str(device), "threads_per_process": args.threads,
            "recipe": args.recipe, "overrides": args.set, "batch_size": recipe.batch_size, "rows_per_rank": rows,
            "student_steps_per_gen_step": k, "steps": steps, "seconds": elapsed, "warmup_seconds": warm,
            "steps_per_second": steps / elapsed, "samples_per_second": steps * recipe.batch_size / elapsed,
            "bytes_per_step": total, "bytes_per_student_step": per_student, "bytes_per_generator_step": per_gen,
            "gathered_bytes_per_row": per_gen.get("all_gather", 0.0) / rows,
        }
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


def launch(n: int, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n),
           str(Path(__file__).resolve()), "--worker", "--out", str(out), "--recipe", args.recipe,
           "--device", args.device, "--threads", str(args.threads), "--seconds", str(args.seconds),
           "--set", *args.set]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{n} process(es) failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def mib(b: float) -> str:
    return f"{b / 2**20:.3f} MiB" if b >= 2**16 else f"{b:.0f} B"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--recipe", default="paper")
    ap.add_argument("--set", nargs="*", default=DEFAULT_SET,
                    help=f"recipe overrides (default: {' '.join(DEFAULT_SET)})")
    ap.add_argument("--seconds", type=float, default=30.0, help="timed seconds per process count (default 30)")
    ap.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per process (default 1)")
    ap.add_argument("--json", type=Path, default=RESULTS / "ddp_scaling.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.processes:
            rows.append(launch(n, args, Path(tmp) / f"{n}.json"))
            print(f"{n} process(es): {rows[-1]['steps_per_second']:.3f} steps/s, "
                  f"{rows[-1]['samples_per_second']:.1f} samples/s", flush=True)
    load_after = os.getloadavg()
    base = rows[0]["steps_per_second"]
    for r in rows:
        r["speedup"] = r["steps_per_second"] / base
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    report = {"machine": machine, "load_average_before": load_before, "load_average_after": load_after,
              "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")

    lines = [f"# DDP scaling of `edgesr distill` ({rows[0]['device']}, {machine})", "",
             f"Recipe `{args.recipe}` with `{' '.join(args.set)}`; the same global batch on every row; "
             f"{args.threads} thread(s) per process. Load average (1/5/15 min) before "
             f"{'/'.join(f'{v:.2f}' for v in load_before)}, after {'/'.join(f'{v:.2f}' for v in load_after)}.", "",
             "| processes | rows/rank | student steps/s | samples/s | speed-up | bytes/step (all-reduce + gather) "
             "| student step | generator step |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['processes']} | {r['rows_per_rank']} | {r['steps_per_second']:.3f} | "
                     f"{r['samples_per_second']:.2f} | {r['speedup']:.2f}x | {mib(sum(r['bytes_per_step'].values()))} "
                     f"| {mib(sum(r['bytes_per_student_step'].values()))} "
                     f"| {mib(sum(r['bytes_per_generator_step'].values()))} |")
    lines += ["", "Bytes are what each rank hands to collectives (the payload), counted by `World.traffic`; "
              "one process hands none. Written by `benchmarks/ddp_scaling.py`.", ""]
    (args.json.with_suffix(".md")).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
