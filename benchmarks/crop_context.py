"""How far a pool crop's cached teacher targets are from what the teacher computes on the crop itself.

The pool's teacher outputs are computed once, on whole pool images; a student batch is crops of
them. Near a crop's edge the cached target depends on pixels outside the crop, which the
student never sees (it sees zero padding there), so part of every crop's target is out of the
student's reach. This measures how much: the teacher run on each crop alone against the cached
whole-image output, as PSNR over the crop less ``margin`` pixels on each side, for margins of 0
to 12 px, at every scale, on dead-leaves images drawn as the pool draws them (no natural
image). ``samples.loss_margin`` is the recipe key that leaves such a margin out of the loss.

    PYTHONPATH=. python benchmarks/crop_context.py --out benchmarks/results/crop_context.json
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from edgesr.io import write_json
from edgesr.models.zoo import load_model
from edgesr.samples.pool import PoolImages


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="pytorch-vdsr", help="teacher model (default pytorch-vdsr)")
    ap.add_argument("--images", type=int, default=8, help="pool images (default 8)")
    ap.add_argument("--size", type=int, default=96, help="their side in px, as the recipes' pool_size (default 96)")
    ap.add_argument("--patch", type=int, default=48, help="crop side in px, as samples.patch (default 48)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the images (default 1)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/crop_context.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    teacher, _ = load_model(args.teacher)
    teacher.eval()
    margins = [0, 2, 4, 6, 8, 12]
    offset = (args.size - args.patch) // 2  # a crop away from the image's own edges
    rows = []
    for scale in (2, 3, 4):
        x = PoolImages.draw(["dead-leaves-aa"], [], args.images, args.size, [scale], args.seed).inputs
        cached = teacher(x)[..., offset : offset + args.patch, offset : offset + args.patch]
        alone = teacher(x[..., offset : offset + args.patch, offset : offset + args.patch])
        for m in margins:
            err = (alone - cached)[..., m : args.patch - m, m : args.patch - m].square().mean()
            rows.append({"scale": scale, "margin": m, "psnr": round(10 * math.log10(1 / float(err)), 2)})
    print(f"teacher on a {args.patch}-px crop alone against its output on the whole {args.size}-px image "
          "(PSNR dB over the crop less the margin)")
    print("margin px | " + " | ".join(f"x{s}" for s in (2, 3, 4)))
    for m in margins:
        print(f"{m:9d} | " + " | ".join(f"{r['psnr']:.2f}" for r in rows if r["margin"] == m))
    write_json(args.out, {"teacher": args.teacher, "images": args.images, "size": args.size, "patch": args.patch,
                          "seed": args.seed, "rows": rows})


if __name__ == "__main__":
    main()
