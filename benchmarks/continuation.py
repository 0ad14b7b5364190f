"""Screen a lever cheaply: continue a finished run's student for a few thousand steps under one
change, and score it on the held-out split.

A full-length run of the hour recipe takes the hour; this takes minutes. The run's student is
trained on as its recipe trained it (the same pool, drawn again from the recipe, with the cached
teacher outputs of its run folder; bf16 autocast where the recipe had it; whole pool images, two a
step, at the scales' shares) with the run's optimizer at ``--lr`` on a cosine to zero, and one thing changed:

- ``--loss mse``: the squared error instead of L1 (a polish in the error PSNR measures);
- ``--gt-share F``: the targets moved a share ``F`` of the way from the teacher's outputs to the
  procedural ground truth the pool's inputs were degraded from (the dead leaves themselves);
- ``--teacher-views V``: the targets the teacher's self-ensemble over ``V`` symmetries of
  each pool image (``samples.teacher_views``), every view in float32 (a run computes the views
  after the first as its steps run the teacher, in bf16 where it trains so), computed once into
  a folder of ``--cache``;
- ``--pool-size S --pool-images N``: a pool of ``N`` images of ``S`` px (its teacher outputs
  computed once and kept in a folder of ``--cache``), where fewer pixels of each image lie within the
  teacher's receptive field of a border.

The control is the same continuation with nothing changed (``--loss l1``); ``--steps 0`` scores
the run's student as it is. Scores: the ablation's held-out split (the last 24 train291 images,
128-px centre crops, on which choices are made) and the same images whole. Two arms side by
side on 1 thread each take about 8 minutes at 4,000 steps of 96 px on the project's 2-core CPU.

    PYTHONPATH=. python benchmarks/continuation.py --run runs/distill/cpu-hour --loss l1 \\
        --out benchmarks/results/ablation_hour/continuation/l1.json
    PYTHONPATH=. python benchmarks/continuation.py --summarise benchmarks/results/ablation_hour/continuation
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from ablation import VAL_CROP, VAL_IMAGES  # the script beside this one: its held-out split

from edgesr.config import load_recipe
from edgesr.data.splits import holdout, validation_pairs
from edgesr.distill.losses import kd_loss
from edgesr.distill.recipe import DistillRecipe
from edgesr.distill.trainer import pool_key
from edgesr.evaluate import validation_psnr
from edgesr.io import write_json
from edgesr.models.predict import input_kind, torch_predictor
from edgesr.models.refit import layerwise_forward
from edgesr.models.zoo import load_for_scales
from edgesr.samples.pool import SQUARE_SYMMETRIES, PoolImages, SamplePool, load_targets, save_targets, symmetry_average
from edgesr.samples.priors import prior_images
from edgesr.train.optim import OptimConfig, build_optimizer, descend, lr_at, set_lr
from edgesr.train.trainer import native_cpu_bf16

#: a centre crop larger than any train291 image: the images whole
WHOLE = 100_000


def pool_of(recipe: DistillRecipe, run: Path, images: int, size: int, views: int, cache: Path) -> SamplePool:
    """The run's pool with its cached targets or, at another size or number of teacher views,
    one drawn as the recipe draws pools, its teacher outputs computed once into a folder of
    ``cache``; both read through the run folders' own reader (the pool's key, shape and finite
    values checked)."""
    sm = recipe.samples
    key = pool_key(replace(recipe, samples=replace(sm, pool_images=images, pool_size=size, teacher_views=views)))
    drawn = PoolImages.draw(sm.priors, sm.prior_weights, images, size, recipe.scales, recipe.seed)
    kept = cache / (f"{images}x{size}_seed{recipe.seed}" + (f"_views{views}" if views > 1 else ""))
    own = (images, size, views) == (sm.pool_images, sm.pool_size, sm.teacher_views)
    targets = load_targets(run, key, drawn.inputs.shape) if own else None
    if targets is None:
        targets = load_targets(kept, key, drawn.inputs.shape)
    if targets is None:
        teacher, _ = load_for_scales(recipe.teacher, list(recipe.scales))
        t0 = time.time()
        with torch.no_grad():
            targets = symmetry_average(partial(layerwise_forward, teacher.eval()), drawn.inputs, views)
        print(f"teacher outputs on the pool, {views} view(s): {time.time() - t0:.0f} s", flush=True)
        kept.mkdir(parents=True, exist_ok=True)
        save_targets(kept, key, targets)
    return SamplePool(drawn.inputs, targets, drawn.scales, {}, dict(zip(recipe.scales, sm.scale_weights)))


def continue_training(student: torch.nn.Module, pool: SamplePool, args: argparse.Namespace, size: int,
                      optim: OptimConfig, bf16: bool) -> list[dict]:
    """``args.steps`` steps of two whole pool images, with the run's optimizer settings on a
    cosine from ``args.lr`` without warm-up; the L1 to the (possibly moved) targets logged every
    500 steps."""
    student.to(memory_format=torch.channels_last).train()
    cfg = replace(optim, lr=args.lr, schedule="cosine", warmup=0)
    opt = build_optimizer(student.parameters(), cfg)
    log, total, t0 = [], 0.0, time.time()
    for step in range(args.steps):
        set_lr(opt, lr_at(cfg, step, args.steps))
        x, y = pool.batch(2, size, True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = student(x.contiguous(memory_format=torch.channels_last))
        loss = kd_loss(y, out, args.loss)
        descend(opt, loss, cfg)
        total += float(loss if args.loss == "l1" else kd_loss(y, out.detach(), "l1"))
        if (step + 1) % 500 == 0:
            log.append({"step": step + 1, "l1": total / 500, "seconds": round(time.time() - t0, 1)})
            print(f"  step {step + 1}: L1 {total / 500:.5f} ({time.time() - t0:.0f} s)", flush=True)
            total = 0.0
    return log


def summarise(folder: Path) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.name != "summary.json"]
    head = ("| arm | steps | x2 | x3 | x4 | mean | whole x2 | whole x3 | whole x4 | whole mean |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        s = r["scores"]
        lines.append(f"| {r['arm']} | {r['steps']} | " + " | ".join(
            f"{s[k]:.4f}" for k in ("val_psnr_x2", "val_psnr_x3", "val_psnr_x4", "val_psnr", "whole_val_psnr_x2",
                                    "whole_val_psnr_x3", "whole_val_psnr_x4", "whole_val_psnr")) + " |")
    table = "\n".join(lines)
    print(table)
    (folder / "summary.md").write_text(table + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a finished run folder of a bicubic-input student (its recipe.yaml, "
                                             "student.safetensors and pool_targets.safetensors)")
    ap.add_argument("--loss", choices=["l1", "mse"], default="l1", help="the continuation's loss (default l1)")
    ap.add_argument("--gt-share", type=float, default=0.0,
                    help="share of the way from the teacher's outputs to the procedural ground truth (default 0)")
    ap.add_argument("--pool-size", type=int, default=0, help="pool image side in px (default: the recipe's)")
    ap.add_argument("--pool-images", type=int, default=0, help="pool images (default: the recipe's)")
    ap.add_argument("--teacher-views", type=int, default=0,
                    help="symmetries the teacher's outputs are averaged over, 1-8 (default: the recipe's)")
    ap.add_argument("--steps", type=int, default=4000, help="continuation steps, two pool images each (default 4000)")
    ap.add_argument("--lr", type=float, default=1e-4, help="peak of the cosine (default 1e-4)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the batches (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: two arms side by side)")
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"), help="default ../shared/data")
    ap.add_argument("--cache", type=Path, default=Path("runs/continuation_cache"),
                    help="where other pools' teacher outputs are kept (default runs/continuation_cache)")
    ap.add_argument("--out", type=Path, help="this arm's JSON")
    ap.add_argument("--summarise", type=Path, help="print and write the table of the arms' JSONs in this folder")
    args = ap.parse_args()
    if args.summarise:
        return summarise(args.summarise)
    if args.run is None or args.out is None:
        raise SystemExit("--run and --out are needed (or --summarise FOLDER)")
    if not 0 <= args.gt_share <= 1:
        raise SystemExit(f"--gt-share {args.gt_share}: a share, between 0 and 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    recipe = load_recipe(DistillRecipe, str(args.run / "recipe.yaml"))
    if recipe.student.family().input_kind != "bicubic":
        raise SystemExit(f"{args.run}: an LR-space student; this continues bicubic-input students only")
    sm = recipe.samples
    images, size = args.pool_images or sm.pool_images, args.pool_size or sm.pool_size
    views = args.teacher_views or sm.teacher_views
    if not 1 <= views <= SQUARE_SYMMETRIES:
        raise SystemExit(f"--teacher-views {views}: between 1 and {SQUARE_SYMMETRIES}")
    pool = pool_of(recipe, args.run, images, size, views, args.cache)
    if args.gt_share:
        hr = torch.from_numpy(prior_images(sm.priors, sm.prior_weights, images, size, recipe.seed))[:, None]
        pool.targets = torch.lerp(pool.targets, hr.repeat(len(recipe.scales), 1, 1, 1), args.gt_share)
    student, _ = load_for_scales(str(args.run), list(recipe.scales))
    arm = (f"{args.loss}" + (f", gt {args.gt_share:g}" if args.gt_share else "")
           + (f", pool {images}x{size}px" if (images, size) != (sm.pool_images, sm.pool_size) else "")
           + (f", teacher x{views}" if views != sm.teacher_views else ""))
    if not args.steps:
        arm = "the run's student"
    print(f"{arm}: {args.steps} steps", flush=True)
    bf16 = recipe.cpu_bf16 and native_cpu_bf16()  # as the run's trainer decided
    log = continue_training(student, pool, args, size, recipe.student_optim, bf16) if args.steps else []
    student.eval()
    _, paths = holdout(args.data_root / "train291", VAL_IMAGES)
    scores = {}
    for prefix, crop in (("", VAL_CROP), ("whole_", WHOLE)):
        got = validation_psnr(torch_predictor(student), validation_pairs(paths, list(recipe.scales), crop),
                              input_kind(student))
        scores.update({prefix + k: round(v, 4) for k, v in got.items()})
    print(arm, scores)
    write_json(args.out, {"arm": arm, "run": str(args.run), "steps": args.steps, "lr": args.lr, "loss": args.loss,
                          "gt_share": args.gt_share, "pool_images": images, "pool_size": size, "teacher_views": views,
                          "seed": args.seed, "threads": args.threads, "scores": scores, "log": log})


if __name__ == "__main__":
    main()
