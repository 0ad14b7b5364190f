"""How many ReLU channels of each student of a run (x2, x3, x4) never fire: the capacity a run lost.

A channel whose ReLU output is zero on (nearly) every pixel of every input passes no signal and
no gradient; once there, plain training does not bring it back. For each student of each run,
the share of pixels on which every ReLU channel (the head's and each body block's) is positive,
over dead-leaves images from the pool's own prior (no natural image) degraded at the scale (the
LR image for an LR-space student, its bicubic upscale for VDSR-half), and the channels active on
under ``--threshold`` of them. Any network whose convs form a ReLU chain (``SRNet.relu_chain``:
every family registered today) is measured the same way. Prints a table and writes JSON.

    PYTHONPATH=. python benchmarks/dead_channels.py --run seed0=runs/distill/quick-edge \\
        --run hour=runs/distill/cpu-hour --out benchmarks/results/dead_channels.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edgesr.io import write_json
from edgesr.models.srnet import SRNet
from edgesr.models.zoo import load_model, weights_in_run
from edgesr.samples.pool import degrade
from edgesr.samples.priors import prior_images


@torch.no_grad()
def activity(net: SRNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Per ReLU layer (every conv but the last, in graph order), each channel's share of positive outputs."""
    if not net.relu_chain:
        raise SystemExit(f"{net.arch or type(net).__name__}: its convs are not a ReLU chain")
    shares, h = [], x
    for conv in net.convs()[:-1]:
        h = torch.relu(conv(h))
        shares.append((h > 0).float().mean(dim=(0, 2, 3)))
    return shares


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=RUN_DIR|MODEL",
                    help="a run folder, or a model (zoo name or weights file)")
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
        nets: dict[str, SRNet] = {}  # VDSR-half and the teacher are one file for every scale
        for scale in (2, 3, 4):
            # a run folder, or any model load_model takes (a zoo name such as the teacher, a file)
            path = str(weights_in_run(run, scale) if Path(run).is_dir() else run)
            if path not in nets:
                nets[path] = load_model(path)[0]
            net = nets[path]
            lr, upscaled = degrade(hr, scale)
            shares = activity(net.eval(), lr if net.input_kind == "lr" else upscaled)
            dead = [int((s < args.threshold).sum()) for s in shares]
            rows.append({"run": label, "path": str(path), "scale": scale, "width": len(shares[0]),
                         "dead_per_layer": dead, "dead": sum(dead), "channels": sum(len(s) for s in shares)})
            print(f"{label:>10} x{scale} width {len(shares[0]):3d}: dead {sum(dead):4d} of "
                  f"{rows[-1]['channels']:4d}  per layer {dead}")
    write_json(args.out, {"images": args.images, "size": args.size, "threshold": args.threshold,
                          "seed": args.seed, "rows": rows})


if __name__ == "__main__":
    main()
