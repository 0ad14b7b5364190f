"""Reproduce the paper's Table 1 under a wall-clock budget: teacher, bicubic, DFSR and DFSR+CMI.

    python benchmarks/table1.py --budget-minutes 3 --device cuda --data-root ../shared/data

1. Speed: student steps/s of the faithful paper recipe (fp32, as published) and of the GPU
   speed mode (bf16 autocast + channels_last) and of each budget recipe, in one run.
2. Each budget recipe (default: fast-dfsr, fast-paper) is trained for the same wall-clock
   budget: its step count is set from its measured rate so the cosine schedule ends on time,
   and ``budget_minutes`` is a hard stop. The student at the end is the one evaluated (no
   selection on Set5/Set14; validation uses held-out train291 crops).
3. Set5/Set14 x2/x3/x4 PSNR/SSIM of all rows, beside the paper's published numbers, into
   ``<out>/table1.json`` and ``<out>/table1.md``. Students stay in ``<runs>/<recipe>/``;
   rerunning with the same ``--runs`` resumes unfinished runs and reuses finished ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from distill_throughput import measure  # the script beside this one
from rich.console import Console

from edgesr.cache import ScoreCache
from edgesr.config import load_recipe
from edgesr.data.benchmark import open_set
from edgesr.distill.command import distill
from edgesr.distill.recipe import DistillRecipe
from edgesr.evaluate import Row, evaluate_rows
from edgesr.models.predict import benchmark_predictor
from edgesr.models.zoo import load_model
from edgesr.train.command import describe_device, resolve_device
from edgesr.train.run_folder import CHECKPOINT_FILE, RESULTS_FILE

#: The paper's Table 1 (PSNR / SSIM as printed), for comparison only.
PAPER = {
    "teacher": {"Set5": {2: 37.65, 3: 33.77, 4: 31.46}, "Set14": {2: 33.15, 3: 29.87, 4: 30.45}},
    "bicubic": {"Set5": {2: 33.69, 3: 30.40, 4: 28.41}, "Set14": {2: 30.33, 3: 27.23, 4: 28.03}},
    "dfsr": {"Set5": {2: 37.13, 3: 33.32, 4: 30.99}, "Set14": {2: 32.80, 3: 29.55, 4: 30.16}},
    "paper": {"Set5": {2: 37.22, 3: 33.41, 4: 31.08}, "Set14": {2: 32.84, 3: 29.58, 4: 30.18}},
}
#: which paper row each budget recipe is compared with
COMPARE = {"fast-dfsr": "dfsr", "fast-paper": "paper", "dfsr": "dfsr", "paper": "paper", "gpu": "paper",
           "cpu-hour": "paper", "quick": "paper"}


def speed_table(recipes: list[str], base: list[str], device: torch.device, seconds: float, console: Console
                ) -> list[dict]:
    """Steps/s of the faithful recipe in fp32, in speed mode, and of each budget recipe."""
    configs = [("paper (as published: fp32)", "paper", ["bf16=false", "channels_last=false"]),
               ("paper + speed mode (bf16, channels_last)", "paper", ["bf16=true", "channels_last=true"])]
    configs += [(name, name, []) for name in recipes]
    rows = []
    for label, name, extra in configs:
        recipe = load_recipe(DistillRecipe, name, base + extra)
        teacher, _ = load_model(recipe.teacher)
        r = measure(recipe, teacher, device, seconds)
        rows.append({"config": label, "recipe": name, "batch_size": recipe.batch_size, **r})
        console.print(f"speed {label}: {r['steps_per_second']:.2f} student steps/s "
                      f"({r['patches_per_second']:.0f} patches/s)")
    return rows


def run_recipe(name: str, rate: float, budget_min: float, base: list[str], runs: Path, console: Console) -> dict:
    run_dir = runs / name
    if (run_dir / RESULTS_FILE).is_file():
        console.print(f"{name}: finished earlier, reusing {run_dir}")
    elif (run_dir / CHECKPOINT_FILE).is_file():
        distill(resume=run_dir, console=console)
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # started but never checkpointed: nothing to keep
        recipe = load_recipe(DistillRecipe, name, base)
        steps = max(int(rate * budget_min * 60 * 0.97), recipe.student_steps_per_gen_step)
        per_stage = max(steps // recipe.progressive.stages, 1)
        overrides = base + [f"name={name}", f"progressive.steps=[{per_stage}]", f"budget_minutes={budget_min}",
                            f"validation.every={max(per_stage // 4, 1)}", f"checkpoint_every={max(per_stage // 4, 1)}"]
        distill(name, overrides, out=runs, console=console)
    return json.loads((run_dir / RESULTS_FILE).read_text())


def markdown(table: dict, sets: list[str], scales: list[int], budget: float, device: str) -> str:
    head = " | ".join(f"{s} x{k}" for s in sets for k in scales)
    lines = [f"Table 1, measured on {device}; budget {budget:g} min of training per student. "
             "PSNR dB / SSIM (Y, border = scale, MATLAB bicubic). *paper* rows are the published numbers.",
             "", f"| row | {head} |", "|---|" + "---|" * (len(sets) * len(scales))]
    for row, data in table.items():
        cells = []
        for s in sets:
            for k in scales:
                v = data.get(s, {}).get(str(k)) or data.get(s, {}).get(k)
                if v is None:
                    cells.append("")
                elif isinstance(v, dict):
                    ssim = f" / {v['ssim']:.4f}" if v.get("ssim") is not None else ""
                    cells.append(f"{v['psnr']:.2f}{ssim}")
                else:
                    cells.append(f"{v:.2f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-minutes", type=float, default=3.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"),
                    help="holds Set5/ and Set14/ (prepared arrays or gt images) and train291/")
    ap.add_argument("--recipes", nargs="+", default=["fast-dfsr", "fast-paper"])
    ap.add_argument("--probe-seconds", type=float, default=15.0)
    ap.add_argument("--runs", type=Path, default=Path("runs/table1"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--set", nargs="*", default=[], help="extra recipe overrides for every run")
    args = ap.parse_args()
    console = Console()
    device = resolve_device(args.device)
    sets = [str(args.data_root / "Set5"), str(args.data_root / "Set14")]
    base = [f"device={device}", f"evaluation.sets=[{', '.join(sets)}]",
            f"validation.data={args.data_root / 'train291'}", *args.set]
    started = time.time()
    speed = speed_table(args.recipes, base, device, args.probe_seconds, console)
    rates = {r["recipe"]: r["steps_per_second"] for r in speed if r["config"] == r["recipe"]}
    results = {name: run_recipe(name, rates[name], args.budget_minutes, base, args.runs, console)
               for name in args.recipes}
    teacher, meta = load_model(load_recipe(DistillRecipe, args.recipes[0], base).teacher)
    bsets = [open_set(s) for s in sets]
    row = Row(lambda: benchmark_predictor(teacher, device), store=ScoreCache(meta["sha256"]))
    t_scores = [s.to_dict() for s in evaluate_rows({"teacher": row}, bsets, [2, 3, 4])["teacher"]]
    set_names = [b.name for b in bsets]
    table: dict = {"teacher (measured)": {}, "bicubic (measured)": {}}
    for s in t_scores:
        table["teacher (measured)"].setdefault(s["set"], {})[s["scale"]] = {"psnr": s["psnr"], "ssim": s["ssim"]}
        table["bicubic (measured)"].setdefault(s["set"], {})[s["scale"]] = {"psnr": s["bicubic_psnr"],
                                                                           "ssim": s["bicubic_ssim"]}
    verdict: dict = {}
    for name, res in results.items():
        row = f"{name} (ours, {args.budget_minutes:g} min)"
        table[row] = {}
        for s in res["student"]:
            table[row].setdefault(s["set"], {})[s["scale"]] = {"psnr": s["psnr"], "ssim": s["ssim"]}
            ref = PAPER.get(COMPARE.get(name, ""), {}).get(s["set"], {}).get(s["scale"])
            if ref is not None:
                verdict.setdefault(name, {}).setdefault(s["set"], {})[s["scale"]] = round(s["psnr"] - ref, 3)
    for key, label in (("dfsr", "DFSR (paper)"), ("paper", "DFSR + CMI (paper)"), ("teacher", "teacher (paper)"),
                       ("bicubic", "bicubic (paper)")):
        table[label] = PAPER[key]
    out = {"device": describe_device(device),
           "budget_minutes": args.budget_minutes, "total_seconds": round(time.time() - started, 1),
           "speed": speed, "runs": {n: {k: v for k, v in r.items() if k not in ("student", "teacher")}
                                    for n, r in results.items()},
           "table": table, "psnr_minus_paper": verdict}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table1.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    md = markdown(table, set_names, [2, 3, 4], args.budget_minutes, out["device"])
    md += "\nPSNR minus the paper's (dB): " + json.dumps(verdict) + "\n"
    (args.out / "table1.md").write_text(md)
    console.print(md)


if __name__ == "__main__":
    main()
