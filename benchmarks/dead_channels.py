"""How many ReLU channels of each LR-space student (x2, x3, x4 of a run) never fire: the capacity a run lost.

A channel whose ReLU output is zero on (nearly) every pixel of every input passes no signal and
no gradient; once there, plain training does not bring it back. For each student of each run,
the share of pixels on which every ReLU channel (the head's and each body block's) is positive,
over dead-leaves LR crops from the pool's own prior (no natural image), and the channels active
on under ``--threshold`` of them. Prints a table and writes JSON.

    PYTHONPATH=. python benchmarks/dead_channels.py --run seed0=runs/distill/quick-edge \\
        --run seed1=runs/distill_seed1/quick-edge --out benchmarks/results/dead_channels.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edgesr.io import write_json
from edgesr.models.zoo import load_model, weights_in_run
from edgesr.samples.pool import degrade
from edgesr.samples.priors import prior_images


@torch.no_grad()
def activity(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per ReLU layer (head first, then each body block), each channel's share of positive outputs."""
    h = net.stem(x)
    shares = [(h > 0).float().mean(dim=(0, 2, 3))]
    for block in net.body:
        h = block(h)
        shares.append((h > 0).float().mean(dim=(0, 2, 3)))
    return shares


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=RUN_DIR")
    ap.add_argument("--images", type=int, default=16, help="dead-leaves images (default 16)")
    ap.add_argument("--size", type=int, default=96, help="their size in px, before the downscale (default 96)")
    ap.add_argument("--threshold", type=float, default=0.01,
                    help="a channel positive on fewer than this share of pixels counts as dead (default 0.01)")
    ap.add_argument("--seed", type=int, default=12345, help="seed of the images (default 12345)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dead_channels.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    hr = torch.from_numpy(prior_images(["dead-leaves-aa"], [1.0], args.images, args.size, args.seed))[:, None]
    rows = []
    for spec in args.run:
        label, run = spec.split("=", 1)
        for scale in (2, 3, 4):
            path = weights_in_run(run, scale)
            net, _ = load_model(str(path))
            lr, _ = degrade(hr, scale)
            shares = activity(net.eval(), lr)
            dead = [int((s < args.threshold).sum()) for s in shares]
            rows.append({"run": label, "path": str(path), "scale": scale, "width": len(shares[0]),
                         "dead_per_layer": dead, "dead": sum(dead), "channels": sum(len(s) for s in shares)})
            print(f"{label:>10} x{scale} width {len(shares[0]):3d}: dead {sum(dead):4d} of "
                  f"{rows[-1]['channels']:4d}  per layer {dead}")
    write_json(args.out, {"images": args.images, "size": args.size, "threshold": args.threshold,
                          "seed": args.seed, "rows": rows})


if __name__ == "__main__":
    main()
