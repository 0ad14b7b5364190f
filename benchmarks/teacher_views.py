"""What a teacher's self-ensemble offers as distillation targets, and what it costs.

``samples.teacher_views`` makes a pool's targets the teacher's outputs averaged over several of
the square's eight symmetries of each image, mapped back. Two measurements, on the project's
2-core CPU:

- the teacher itself scored that way on the ablation's held-out split (the last 24 train291
  images, 128-px centre crops), for 1, 2, 4 and 8 views: how much nearer the ground truth
  the targets can get (no choice is made on Set5/Set14);
- the time of one teacher pass over pool images in float32 (the refit's layerwise pass, the
  first view's) and as the training steps run the teacher (bf16 autocast and channels-last
  where the recipe has them: the extra views'), and how far the two outputs are apart (PSNR),
  scaled to the recipe's whole pool.

    PYTHONPATH=. python benchmarks/teacher_views.py --recipe cpu-hour --threads 2 \\
        --out benchmarks/results/ablation_hour/teacher_views.json
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from ablation import VAL_CROP, VAL_IMAGES  # the script beside this one: its held-out split

from edgesr.config import load_recipe
from edgesr.data.splits import holdout, validation_pairs
from edgesr.distill.recipe import DistillRecipe
from edgesr.distill.trainer import Distiller
from edgesr.evaluate import Predictor, validation_psnr
from edgesr.io import write_json
from edgesr.models.predict import input_kind
from edgesr.models.refit import layerwise_forward
from edgesr.models.srnet import net_for
from edgesr.models.zoo import load_for_scales
from edgesr.samples.pool import SQUARE_SYMMETRIES, PoolImages, symmetry_average


def ensemble_predictor(model: torch.nn.Module, views: int) -> Predictor:
    """The model in float32 on one image at a time, averaged over ``views`` symmetries."""
    model.eval()

    @torch.inference_mode()
    def predict(image: np.ndarray, scale: int) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        net = net_for(model, scale)
        return symmetry_average(lambda t: net(t.contiguous()), x, views)[0, 0].numpy()

    return predict


def timed(fn, *args) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="cpu-hour", help="the recipe whose teacher, pool and precision are measured "
                                                          "(default cpu-hour)")
    ap.add_argument("--images", type=int, default=32, help="pool images timed, each at every scale (default 32)")
    ap.add_argument("--views", type=int, nargs="+", default=[1, 2, 4, 8], help="default 1 2 4 8")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"), help="default ../shared/data")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ablation_hour/teacher_views.json"))
    args = ap.parse_args()
    if not all(1 <= v <= SQUARE_SYMMETRIES for v in args.views) or args.images < 1:
        raise SystemExit(f"--views take 1 to {SQUARE_SYMMETRIES}, --images at least 1")
    torch.set_num_threads(args.threads)
    recipe = load_recipe(DistillRecipe, args.recipe)
    teacher, _ = load_for_scales(recipe.teacher, list(recipe.scales))

    _, paths = holdout(args.data_root / "train291", VAL_IMAGES)
    pairs = validation_pairs(paths, list(recipe.scales), VAL_CROP)
    scores = []
    print("| views | " + " | ".join(f"x{s}" for s in recipe.scales) + " | mean | seconds |")
    print("|---" * (len(recipe.scales) + 3) + "|")
    for views in args.views:
        got, seconds = timed(validation_psnr, ensemble_predictor(teacher, views), pairs, input_kind(teacher))
        scores.append({"views": views, **{k: round(v, 4) for k, v in got.items()}, "seconds": round(seconds, 1)})
        print(f"| {views} | " + " | ".join(f"{got[f'val_psnr_x{s}']:.4f}" for s in recipe.scales)
              + f" | {got['val_psnr']:.4f} | {seconds:.0f} |", flush=True)

    sm = recipe.samples
    x = PoolImages.draw(sm.priors, sm.prior_weights, args.images, sm.pool_size, recipe.scales, recipe.seed).inputs
    distiller = Distiller(recipe, teacher, torch.device("cpu"))
    distiller.teacher_pass(x[:16])  # oneDNN's first call picks its kernels
    exact, float32_s = timed(layerwise_forward, distiller.teacher, x)
    steps_way, pass_s = timed(distiller.teacher_pass, x)
    err = float((steps_way - exact).square().mean())
    whole = sm.pool_images * len(recipe.scales) / len(x)
    timing = {"images": len(x), "size": sm.pool_size, "float32_seconds": round(float32_s, 2),
              "pass_seconds": round(pass_s, 2), "bf16": distiller.amp, "channels_last": distiller.channels_last,
              "pass_psnr_to_float32": round(10 * math.log10(1 / err), 2) if err else None,  # None: equal
              "recipe_pool_images": sm.pool_images * len(recipe.scales),
              "recipe_pool_float32_seconds": round(float32_s * whole, 1),
              "recipe_pool_pass_seconds": round(pass_s * whole, 1)}
    print(f"one teacher pass over {len(x)} pool images of {sm.pool_size} px: float32 {float32_s:.1f} s, as the "
          f"steps run it (bf16 {distiller.amp}) {pass_s:.1f} s, {timing['pass_psnr_to_float32']} dB apart; "
          f"over the recipe's {timing['recipe_pool_images']}: {timing['recipe_pool_float32_seconds']} s and "
          f"{timing['recipe_pool_pass_seconds']} s")
    write_json(args.out, {"recipe": args.recipe, "teacher": recipe.teacher, "threads": args.threads,
                          "machine": platform.processor() or platform.machine(),
                          "split": f"last {VAL_IMAGES} train291 images, {VAL_CROP}-px centre crops",
                          "scores": scores, "timing": timing})


if __name__ == "__main__":
    main()
