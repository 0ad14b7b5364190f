"""Which distillation recipe gives the best student for a fixed wall-clock budget?

    python benchmarks/ablation.py --budget-minutes 7 --device cpu --threads 2

Every variant is the ``quick`` recipe with some keys changed, run as a real ``edgesr distill``
in its own process with the same ``budget_minutes`` (preparation such as the refit counts
against it; the schedule is fitted to the steps the budget allows on this machine). Each
student is scored on held-out validation images (the last ``--val-images`` of train291,
centre crops; never Set5/Set14). The ``--top`` variants by mean validation PSNR run again with
more seeds; the variant with the best mean over seeds is chosen, and only its students are
evaluated on Set5/Set14, once. The first row is the initialisation alone: the student before
any training step. Writes ``benchmarks/results/ablation.{json,md}``; finished runs are reused
when the script is run again with the same ``--runs``.

The load average before and after each run is recorded: a wall-clock budget only compares
variants fairly on a machine doing nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgesr.data.benchmark import open_set
from edgesr.data.splits import holdout, validation_pairs
from edgesr.evaluate import evaluate, validation_psnr
from edgesr.io import write_json
from edgesr.models.predict import input_kind, torch_predictor
from edgesr.models.zoo import load_for_scales
from edgesr.train.checkpoint import load_checkpoint
from edgesr.train.run_folder import CHECKPOINT_FILE

#: the pool of the earlier recipes: 48 images, all of them refitted on
P48 = ["samples.pool_images=48", "student.refit_images=0"]
#: ... and their 16 crops a step
B16 = [*P48, "batch_size=16"]
#: the pool of the recipe before: 192 images, the refit on the first 48
P192 = ["samples.pool_images=192", "student.refit_images=48"]

#: what every variant has unless it sets its own: quick before the ablations chose its
#: anti-aliased disks (``AA``) and its learning rate (1e-3, ``aa-lr-1e-3``, the recipe as shipped)
BASE = ["samples.priors=[dead-leaves]", "student_optim.lr=0.002"]
#: the pool's disks with anti-aliased edges
AA = ["samples.priors=[dead-leaves-aa]"]

#: name -> (what it tests, recipe overrides on top of ``quick`` and ``BASE``: 4 crops a step, a
#: pool of 96 images with the refit on the first 16). "p48", "b16" and "p192" variants keep the
#: pool and the batch of the recipes they were measured against.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "init-only": ("the refitted student before any training step (p48)",
                  [*P48, "student_optim.lr=0", "budget_minutes=0", "progressive.steps=[1]"]),
    "dead-leaves": ("plain dead-leaves disks (pool 96, refit on 16, 4 crops a step, student lr 2e-3)", []),
    "p192": ("a pool of 192 images, the refit on the first 48 (the recipe before)", P192),
    "p192-refit-16": ("p192, the refit on the first 16", ["samples.pool_images=192", "student.refit_images=16"]),
    "pool-96-refit-48": ("a pool of 96 images, the refit on the first 48", ["samples.pool_images=96",
                                                                          "student.refit_images=48"]),
    "pool-48": ("a pool of 48 images, all refitted on (p48)", P48),
    "p48-batch-8": ("p48, 8 crops a step", [*P48, "batch_size=8"]),
    "p48-batch-16": ("p48, 16 crops a step (the recipe two versions back)", B16),
    "b16-lr-1e-3": ("p48, b16, student lr 1e-3", [*B16, "student_optim.lr=0.001"]),
    "b16-lr-3e-3": ("p48, b16, student lr 3e-3", [*B16, "student_optim.lr=0.003"]),
    "b16-generators-25": ("p48, b16, lr 1e-3, a quarter of each batch from the DFSR generators, with CMI "
                          "(standardised)", [*B16, "student_optim.lr=0.001", "samples.generator_share=0.25",
                                             "losses.w_c=0.8"]),
    "b16-generators-25-no-cmi": ("the same without CMI", [*B16, "student_optim.lr=0.001",
                                                          "samples.generator_share=0.25", "losses.w_c=0"]),
    "dead-leaves-aa": ("the pool's disks with anti-aliased edges (rendered at 2x, averaged down)",
                       AA),
    "p192-kd-mse": ("p192, the student fits the teacher in squared error instead of L1", [*P192, "losses.kd=mse"]),
    "p192-dead-leaves-aa": ("p192, the pool's disks with anti-aliased edges (rendered at 2x, averaged down)",
                            [*P192, *AA]),
    "p192-textured-leaves": ("p192, anti-aliased disks with shading, gratings and noise textures",
                             [*P192, "samples.priors=[textured-leaves]"]),
    "p192-patch-96": ("p192, whole 96-pixel pool images, two a step (the teacher's outputs were computed on "
                      "whole images: a crop's border pixels lack context its targets had)",
                      [*P192, "samples.patch=96", "batch_size=2"]),
    "p192-patch-64": ("p192, 64-pixel crops, two a step", [*P192, "samples.patch=64", "batch_size=2"]),
    "aa-lr-1e-3": ("dead-leaves-aa, student lr 1e-3: quick as shipped", [*AA, "student_optim.lr=0.001"]),
    "aa-batch-8": ("dead-leaves-aa, 8 crops a step", [*AA, "batch_size=8"]),
    "aa-lr-1e-3-bf16": ("quick as shipped, with bf16 autocast and channels-last on a CPU that has bf16 units",
                        [*AA, "student_optim.lr=0.001", "cpu_bf16=true"]),
    "aa-lr-1e-3-bf16-p192": ("aa-lr-1e-3-bf16 with a pool of 192 images (the refit still on the first 16)",
                             [*AA, "student_optim.lr=0.001", "cpu_bf16=true", "samples.pool_images=192"]),
    "lr-1e-3": ("student lr 1e-3", ["student_optim.lr=0.001"]),
    "lr-3e-3": ("student lr 3e-3", ["student_optim.lr=0.003"]),
    "prune-init": ("the student pruned, not refitted", ["student.init=teacher-prune"]),
    "refit-pixels-0.1": ("the refit's normal equations from 10% of the pixels (25% in quick)",
                         ["student.refit_pixels=0.1"]),
    "pink-noise": ("the pool drawn from pink noise", ["samples.priors=[pink-noise]"]),
    "dead-leaves+pink": ("the pool drawn from both priors, 3:1", ["samples.priors=[dead-leaves, pink-noise]",
                                                                  "samples.prior_weights=[3, 1]"]),
    "no-symmetries": ("pool crops without flips and rotations", ["samples.symmetries=false"]),
    "dfsr+cmi": ("the first quick recipe: pruned student, generators only, CMI as published",
                 [*B16, "student.init=teacher-prune", "samples.generator_share=1", "samples.pool_images=0",
                  "student_optim.lr=0.0002", "student_optim.clip_grad_norm=0.4", "cmi.standardize=false"]),
}


#: ``quick-edge``: LR-space students, one per scale, under the same 8.75-minute budget. Every
#: variant is the recipe with its own overrides (no common base).
EDGE_VARIANTS: dict[str, tuple[str, list[str]]] = {
    "edge": ("quick-edge as written", []),
    "edge-w32-repeat": ("32 x 12 with the repeated-pixel anchor at every scale (no per-scale choice)",
                        ["student.per_scale=[]"]),
    "edge-fp32": ("float32 training instead of bf16 autocast", ["cpu_bf16=false"]),
    "edge-bicubic": ("the bicubic anchor instead of the repeated LR pixel", ["student.anchor=bicubic"]),
    "edge-rep": ("over-parameterised training (lr-rep: each conv plus a 4x expanded linear block), folded",
                 ["student.arch=lr-rep"]),
    "edge-pool-96": ("a pool of 96 images instead of 192 (half the teacher's preparation)",
                     ["samples.pool_images=96"]),
    "edge-size-144": ("96 pool images of 144 px instead of 192 of 96 (more x4 content, same preparation)",
                      ["samples.pool_images=96", "samples.pool_size=144"]),
    "edge-lr-1e-3": ("student lr 1e-3", ["student_optim.lr=0.001"]),
    "edge-lr-4e-3": ("student lr 4e-3", ["student_optim.lr=0.004"]),
    "edge-batch-32": ("32 crops per scale a step", ["batch_size=32"]),
    "edge-x4-bicubic": ("the bicubic anchor at x4 only (repeat at x2, x3)",
                        ["student.per_scale=[{scale: 4, anchor: bicubic}]"]),
    "edge-x4-bicubic-w64": ("edge-x4-bicubic with a 64-wide x4 student",
                            ["student.per_scale=[{scale: 4, anchor: bicubic, width: 64}]",
                             "student.shared_body=false"]),
    "edge-x4-bicubic-w48": ("edge-x4-bicubic with a 48-wide x4 student",
                            ["student.per_scale=[{scale: 4, anchor: bicubic, width: 48}]",
                             "student.shared_body=false"]),
    "edge-rep-x4-bicubic": ("lr-rep (over-parameterised training) with the bicubic anchor at x4",
                            ["student.arch=lr-rep", "student.per_scale=[{scale: 4, anchor: bicubic}]"]),
    "edge-shared": ("one body shared by the three scales' students (own first and last convs, anchors)",
                    ["student.shared_body=true"]),
    "edge-shared-fused": ("edge-shared with the fused Adam update (the same rule in fewer CPU kernels)",
                          ["student.shared_body=true", "student_optim.fused=true"]),
    "edge-x34-w48": ("x3 and x4 students 48 wide, sharing one body; x2 32 wide on its own",
                     ["student.per_scale=[{scale: 3, width: 48}, {scale: 4, anchor: bicubic, width: 48}]"]),
    "edge-x34-w64": ("x3 and x4 students 64 wide, sharing one body; x2 32 wide on its own",
                     ["student.per_scale=[{scale: 3, width: 64}, {scale: 4, anchor: bicubic, width: 64}]"]),
    "edge-x34-w64-x2b32": ("edge-x34-w64 with 32 crops a step for x2 (16 for x3, x4)",
                           ["student.per_scale=[{scale: 2, batch: 32}, {scale: 3, width: 64}, "
                            "{scale: 4, anchor: bicubic, width: 64}]"]),
    "edge-x34-w64-x2b48": ("edge-x34-w64 with 48 crops a step for x2 (16 for x3, x4)",
                           ["student.per_scale=[{scale: 2, batch: 48}, {scale: 3, width: 64}, "
                            "{scale: 4, anchor: bicubic, width: 64}]"]),
    "edge-x34-w64-rep2": ("edge-x34-w64 with each conv's expanded block 2x its channels instead of 4x",
                          ["student.per_scale=[{scale: 3, width: 64}, {scale: 4, anchor: bicubic, width: 64}]",
                           "student.reparam=2"]),
    "edge-b8": ("8 crops a step at every scale instead of 16 (more updates in the budget)", ["batch_size=8"]),
    "edge-x34-b8": ("8 crops a step for x3 and x4 (16 for x2, still updated twice a step)",
                    ["student.per_scale=[{scale: 2, steps: 2, batch: 16}, {scale: 3, width: 64, batch: 8}, "
                     "{scale: 4, width: 64, anchor: bicubic, batch: 8}]"]),
    "edge-b8-x2s3": ("edge-b8 with the x2 student updated three times a step",
                     ["batch_size=8", "student.per_scale=[{scale: 2, steps: 3}, {scale: 3, width: 64}, "
                      "{scale: 4, width: 64, anchor: bicubic}]"]),
    "edge-wu400": ("the learning rate warmed up over 400 steps instead of 20", ["student_optim.warmup=400"]),
    "x4-w32-d12": ("the x4 student alone, 32 x 12, repeat anchor", ["scales=[4]", "student.per_scale=[]"]),
    "x4-w48-d16": ("the x4 student alone, 48 wide, 16 deep",
                   ["scales=[4]", "student.per_scale=[]", "student.width=48", "student.depth=16"]),
    "x4-w64-d12": ("the x4 student alone, 64 wide, 12 deep",
                   ["scales=[4]", "student.per_scale=[]", "student.width=64"]),
    "x2-w32-d12": ("the x2 student alone, 32 x 12 (the recipe's x2 shape)", ["scales=[2]", "student.per_scale=[]"]),
    "x2-w32-d15": ("the x2 student alone, 32 wide, 15 deep",
                   ["scales=[2]", "student.per_scale=[]", "student.depth=15"]),
}

#: the ``cpu-hour`` recipe's crops before it took whole pool images
C48 = ["samples.patch=48", "batch_size=4"]

#: ``cpu-hour``: VDSR-half for an hour. Variants are the recipe with its own overrides.
HOUR_VARIANTS: dict[str, tuple[str, list[str]]] = {
    "hour": ("cpu-hour as written", []),
    "hour-fp32": ("float32 training instead of bf16 autocast", ["cpu_bf16=false"]),
    "hour-rep": ("each conv over-parameterised (plus a 4x expanded linear block), folded before saving",
                 ["student.reparam=4"]),
    "hour-pool-96": ("quick's pool of 96 images instead of 384", ["samples.pool_images=96"]),
    "hour-pool-768": ("a pool of 768 images", ["samples.pool_images=768"]),
    "hour-batch-8": ("8 crops a step", ["batch_size=8"]),
    "hour-lr-5e-4": ("student lr 5e-4", ["student_optim.lr=0.0005"]),
    "hour-lr-2e-3": ("student lr 2e-3", ["student_optim.lr=0.002"]),
    "hour-feat-0.1": ("feature loss at weight 0.1: each body block against the teacher channels the refit fitted it to",
                      ["losses.w_feat=0.1"]),
    "hour-feat-1": ("feature loss at weight 1", ["losses.w_feat=1"]),
    "hour-equal-scales": ("a third of the pool's draws at each scale (the recipe before it shared them 10 : 8 : 3)",
                          ["samples.scale_weights=[]"]),
    "hour-x2-0.5": ("half the pool's draws at x2, 0.3 at x3, 0.2 at x4", ["samples.scale_weights=[5,3,2]"]),
    "hour-views-1": ("the recipe before: the teacher's single pass as the pool's targets, not its 8-view self-ensemble",
                     ["samples.teacher_views=1"]),
    "hour-crops48": ("the recipe before: four 48-px crops a step instead of two whole images", C48),
    "crops48-wu2000": ("hour-crops48, the learning rate warmed up over 2,000 steps instead of 20",
                       [*C48, "student_optim.warmup=2000"]),
    "crops48-lr-5e-4": ("hour-crops48, student lr 5e-4", [*C48, "student_optim.lr=0.0005"]),
    "crops48-lr-3e-4": ("hour-crops48, student lr 3e-4", [*C48, "student_optim.lr=0.0003"]),
    "crops48-slow4-0.1": ("hour-crops48, the first 4 convs at 0.1 of the learning rate (where the ReLUs die)",
                          [*C48, "student.slow_convs=4", "student.slow_lr=0.1"]),
    "crops48-slow4-0": ("hour-crops48, the first 4 convs frozen as the refit left them",
                        [*C48, "student.slow_convs=4", "student.slow_lr=0"]),
    "crops48-margin-4": ("hour-crops48, the loss without each crop's outer 4 px (their cached targets saw "
                         "context the crop cut off)", [*C48, "samples.loss_margin=4"]),
}

#: the variant sets by recipe: (overrides every variant has, variants)
SUITES: dict[str, tuple[list[str], dict[str, tuple[str, list[str]]]]] = {
    "quick": (BASE, VARIANTS),
    "quick-edge": ([], EDGE_VARIANTS),
    "cpu-hour": ([], HOUR_VARIANTS),
}


def recipe_value(recipe: str, section: str | None, key: str, default: object = None) -> object:
    """A key of the recipe's own YAML (``section.key``; ``default`` where it leaves it to the
    schema), as the variants' baseline."""
    import yaml

    from edgesr.config import find_recipe

    data = yaml.safe_load(find_recipe(recipe).read_text())
    value = (data.get(section, {}) if section else data).get(key, default)
    if value is None:
        raise SystemExit(f"recipe {recipe} sets no {section + '.' if section else ''}{key}")
    return value


def recipe_key(recipe: str, section: str | None, key: str, default: int | None = None) -> int:
    return int(recipe_value(recipe, section, key, default))


def recipe_batch(recipe: str) -> int:
    return recipe_key(recipe, None, "batch_size")


def step_factor(overrides: list[str], base_batch: int, base_patch: int) -> float:
    """Under ``--steps``, every variant sees the same number of pixels: a variant with a larger
    batch or crop runs proportionally fewer steps than the recipe's ``base_batch`` crops of
    ``base_patch`` px a step."""
    keys = dict(o.split("=", 1) for o in overrides)
    batch = int(keys.get("batch_size", base_batch))
    pixels = (int(keys["samples.patch"]) / base_patch) ** 2 if "samples.patch" in keys else 1.0
    return base_batch / (batch * pixels)


def reuse_scores(earlier: Path, args: argparse.Namespace) -> None:
    """Seed ``--runs`` with the scores an earlier ``ablation.json`` recorded, for the runs made
    with the same recipe, length and overrides as now (their students are not in the JSON: a
    variant chosen from them is run again for its Set5/Set14 scores)."""
    old = json.loads(earlier.read_text())
    if (old["recipe"], old["steps"], old["budget_minutes"], old["device"], old["threads"]) != \
            (args.recipe, args.steps, args.budget_minutes, args.device, args.threads):
        raise SystemExit(f"{earlier} was measured with another recipe, length, device or thread count")
    for name, v in old["variants"].items():
        variants = SUITES[args.recipe][1]
        if name not in variants or v["overrides"] != variants[name][1]:
            continue
        for run in v["runs"]:
            score_file = args.runs / f"seed{run['seed']}" / name / "ablation_score.json"
            if not score_file.is_file():
                score_file.parent.mkdir(parents=True, exist_ok=True)
                score_file.write_text(json.dumps({**run, "reused_from": str(earlier)}, indent=2) + "\n")


def run_variant(name: str, seed: int, args: argparse.Namespace, weights: bool = False) -> dict:
    """One ``edgesr distill`` of the variant (or its earlier result), scored on validation;
    ``weights``: also when the earlier result's student is not on disk."""
    run_dir = args.runs / f"seed{seed}" / name
    score_file = run_dir / "ablation_score.json"
    if score_file.is_file() and (not weights or list(run_dir.glob("student*.safetensors"))):
        return json.loads(score_file.read_text())
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    base, variants = SUITES[args.recipe]
    _, overrides = variants[name]
    factor = step_factor(overrides, recipe_batch(args.recipe), recipe_key(args.recipe, "samples", "patch", 48))
    length = ([f"budget_minutes={args.budget_minutes}", "progressive.steps=[100000]"] if args.steps is None
              else ["budget_minutes=0",
                    f"progressive.steps=[{round(args.steps * factor)}]"])
    sets = [*length, f"name={name}", f"seed={seed}", f"device={args.device}", "evaluation.sets=[]",
            f"validation.data={args.data_root / 'train291'}", "validation.every=100000", "checkpoint_every=100000",
            *base, *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "edgesr", "distill", "--recipe", args.recipe, "--out", str(run_dir.parent),
           "--set", *sets]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} (seed {seed}) failed:\n{proc.stderr[-3000:]}")
    results = json.loads((run_dir / "results.json").read_text())
    score = {"variant": name, "seed": seed, "steps": results["steps"], "train_seconds": results["seconds"],
             "wall_seconds": round(wall, 1), "load_before": load_before, "load_after": os.getloadavg()[0],
             "validation": score_student(run_dir, args)}
    score_file.write_text(json.dumps(score, indent=2) + "\n")
    return score


_VAL: dict = {}
#: the held-out split choices are made on: the last 24 train291 images, 128-px centre crops
VAL_IMAGES, VAL_CROP = 24, 128


def validation_split(args: argparse.Namespace) -> dict:
    """The held-out pairs of every scale (read once)."""
    if not _VAL:
        _, paths = holdout(args.data_root / "train291", args.val_images)
        _VAL.update(validation_pairs(paths, [2, 3, 4], args.val_crop))
    return _VAL


def teacher_scores(args: argparse.Namespace) -> dict[str, float]:
    """The recipe's teacher on this split: how far each scale of a student is from what it imitates."""
    model, _ = load_for_scales(str(recipe_value(args.recipe, None, "teacher")), [2, 3, 4])
    return {k: round(v, 4) for k, v in validation_psnr(torch_predictor(model), validation_split(args),
                                                        input_kind(model)).items()}


def score_student(run_dir: Path, args: argparse.Namespace, trained: bool = False) -> dict[str, float]:
    """The run's saved student on this split; ``trained``: the weights its last checkpoint
    trained, in place of the saved weight average (``student.ema``) of the same run."""
    split = validation_split(args)
    results = json.loads((run_dir / "results.json").read_text())
    files = results.get("files", {"all": "student.safetensors"})
    scales = [2, 3, 4] if "all" in files else [int(s) for s in files]
    model, _ = load_for_scales(str(run_dir), scales)
    if trained:
        state = load_checkpoint(run_dir / CHECKPOINT_FILE)
        if state["step"] != results["steps"]:
            raise SystemExit(f"{run_dir}: its checkpoint is of step {state['step']}, its student of {results['steps']}")
        model.load_state_dict(state["student"])
    pairs = {s: split[s] for s in scales}
    return {k: round(v, 4) for k, v in validation_psnr(torch_predictor(model), pairs, input_kind(model)).items()}


#: after a run folder in ``--score``: the weights its checkpoint trained, not its saved average
TRAINED = "@trained"


def score_runs(args: argparse.Namespace) -> None:
    """Score finished runs (``LABEL=RUN_DIR``) as a variant's student is scored: how two full-length
    runs of a recipe compare on validation."""
    runs = dict(item.split("=", 1) for item in args.score)
    scored = {}
    for label, run in runs.items():
        folder, trained = (run[: -len(TRAINED)], True) if run.endswith(TRAINED) else (run, False)
        scored[label] = {"run": run, "steps": json.loads((Path(folder) / "results.json").read_text())["steps"],
                         "validation": score_student(Path(folder), args, trained)}
    for label, s in scored.items():
        print(f"{label:24s} steps {s['steps']:6d}  val {s['validation']}", flush=True)
    teacher = teacher_scores(args)
    print(f"{'teacher':24s}               val {teacher}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "scored.json", {"val_images": args.val_images, "val_crop": args.val_crop, "runs": scored,
                                          "teacher": teacher})


def mean_scores(scores: list[dict]) -> dict[str, float]:
    keys = scores[0]["validation"].keys()
    return {k: round(float(np.mean([s["validation"][k] for s in scores])), 4) for k in keys}


def markdown(out: dict) -> str:
    cols = ["val_psnr_x2", "val_psnr_x3", "val_psnr_x4", "val_psnr"]
    length = (f"the crops of {out['steps']} steps of {out['batch_size']} per run (a variant with another batch "
              "runs as many steps as that takes: the steps column)")
    if out["steps"] is None:
        length = f"{out['budget_minutes']:g} min of wall time per run (preparation + training)"
    lines = [f"Ablation of the `{out['recipe']}` recipe: {length} on {out['machine']}, {out['threads']} "
             f"thread(s). Validation PSNR (dB, Y, border = scale) on the last {out['val_images']} train291 "
             f"images (centre {out['val_crop']}-px crops); mean over seeds where a variant ran more than once. "
             f"Each variant is `{out['recipe']}` "
             + (f"with `{' '.join(out['base_overrides'])}` and " if out["base_overrides"] else "with ")
             + "its own overrides (in the JSON). Load average before/after each run in the JSON.",
             "", "| variant | what it tests | seeds | steps | x2 | x3 | x4 | mean |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in out["variants"].items():
        v = row["validation"]
        steps = "/".join(str(s["steps"]) for s in row["runs"])
        lines.append(f"| {name}{' **(chosen)**' if name == out['chosen'] else ''} | {row['description']} | "
                     f"{len(row['runs'])} | {steps} | " + " | ".join(f"{v[c]:.3f}" if c in v else "—" for c in cols)
                     + " |")
    if out.get("teacher"):
        v = out["teacher"]
        lines.append("| teacher | what the students imitate | | | " + " | ".join(f"{v[c]:.3f}" for c in cols) + " |")
    if out.get("benchmark"):
        lines += ["", f"Set5 / Set14 of the chosen variant `{out['chosen']}` (evaluated once, after choosing; "
                  "mean over its seeds):", "", "| set | x2 | x3 | x4 |", "|---|---|---|---|"]
        for set_name, per_scale in out["benchmark"].items():
            lines.append(f"| {set_name} | " + " | ".join(f"{per_scale[str(s)]:.2f}" for s in (2, 3, 4)) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="quick")
    ap.add_argument("--budget-minutes", type=float, default=7.0)
    ap.add_argument("--steps", type=int, default=None,
                    help="a fixed number of student steps instead of the budget (for a busy machine; fair "
                         "only between variants whose steps cost the same)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="*", default=None,
                    help="any of the recipe's variants (default: all): "
                         + "; ".join(f"{r}: {', '.join(v)}" for r, (_, v) in SUITES.items()))
    ap.add_argument("--seeds", type=int, default=2, help="seeds of each top variant")
    ap.add_argument("--top", type=int, default=2)
    ap.add_argument("--no-test-sets", action="store_true", help="stop before Set5/Set14 (exploration)")
    ap.add_argument("--val-images", type=int, default=VAL_IMAGES)
    ap.add_argument("--val-crop", type=int, default=VAL_CROP)
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="an earlier ablation.json whose runs (same recipe, length and overrides) count as done")
    ap.add_argument("--score", nargs="+", metavar="LABEL=RUN_DIR", default=None,
                    help="only score finished runs (e.g. full-length recipe runs) on the same validation split, "
                         f"into --out's scored.json; RUN_DIR{TRAINED}: a run's trained weights (its last "
                         "checkpoint) rather than its saved weight average (student.ema)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.score:
        score_runs(args)
        return
    if args.recipe not in SUITES:
        raise SystemExit(f"no variants for recipe {args.recipe}: choose from {', '.join(SUITES)}")
    base, variants = SUITES[args.recipe]
    args.variants = list(variants) if args.variants is None else args.variants
    unknown = [v for v in args.variants if v not in variants]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}: choose from {', '.join(variants)}")
    started = time.time()
    if args.reuse:
        reuse_scores(args.reuse, args)
    scores = {name: [run_variant(name, 0, args)] for name in args.variants}
    for name, s in scores.items():
        print(f"{name:24s} steps {s[0]['steps']:5d}  val {s[0]['validation']}", flush=True)
    # the candidates: variants of the whole recipe (a single-scale probe of a shape has no mean to compare)
    trained = [n for n in args.variants if n != "init-only" and "val_psnr_x3" in scores[n][0]["validation"]]
    top = sorted(trained, key=lambda n: -scores[n][0]["validation"]["val_psnr"])[: args.top]
    for name in top:
        scores[name] += [run_variant(name, seed, args) for seed in range(1, args.seeds)]
    for name in set(args.variants) - set(top) - {"init-only"}:  # seeds an earlier choice ran count too
        for seed in range(1, args.seeds):
            if (args.runs / f"seed{seed}" / name / "ablation_score.json").is_file():
                scores[name].append(run_variant(name, seed, args))
    chosen = max(top, key=lambda n: mean_scores(scores[n])["val_psnr"])
    if not args.no_test_sets:  # a reused choice is run again for its students
        scores[chosen] = [run_variant(chosen, s["seed"], args, weights=True) for s in scores[chosen]]
    bench: dict = {}
    for seed_score in [] if args.no_test_sets else scores[chosen]:
        model, _ = load_for_scales(str(args.runs / f"seed{seed_score['seed']}" / chosen), [2, 3, 4])
        sets = [open_set(args.data_root / s) for s in ("Set5", "Set14")]
        for sc in evaluate(torch_predictor(model), sets, [2, 3, 4], with_ssim=False, input_kind=input_kind(model)):
            bench.setdefault(sc.set, {}).setdefault(str(sc.scale), []).append(sc.psnr)
    bench = {k: {s: round(float(np.mean(v)), 3) for s, v in per.items()} for k, per in bench.items()}
    out = {"recipe": args.recipe, "batch_size": recipe_batch(args.recipe), "budget_minutes": args.budget_minutes,
           "steps": args.steps,
           "device": args.device,
           "threads": args.threads, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "val_images": args.val_images, "val_crop": args.val_crop, "total_seconds": round(time.time() - started),
           "chosen": chosen, "top": top, "base_overrides": base,
           "variants": {n: {"description": variants[n][0], "overrides": variants[n][1], "runs": scores[n],
                            "validation": mean_scores(scores[n])} for n in args.variants},
           "teacher": teacher_scores(args), "benchmark": bench}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps(out, indent=2) + "\n")
    md = markdown(out)
    (args.out / "ablation.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
