"""Peak memory of upscaling a photo to 4000x3000, tiled (the default) and whole.

    python benchmarks/upscale_memory.py [--model ART.onnx] [--whole]

Without ``--model`` a randomly initialised VDSR-half is exported to a temporary ONNX file
(memory does not depend on the weights). Each measurement runs in a fresh child process that
never imports torch, as on a device, and reports its peak resident memory (``VmHWM``) and the
time taken. Writes ``benchmarks/results/upscale_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def child(model: str, tile: int, out_w: int, out_h: int, scale: int) -> None:
    """Runs in the child: one RGB photo through the artifact; prints JSON."""
    import numpy as np

    from edgesr.bench.measure import proc_status_kb
    from edgesr.runtime import open_upscaler
    from edgesr.runtime.photo import Photo, upscale_photo

    rng = np.random.default_rng(0)
    photo = Photo((rng.random((out_h // scale, out_w // scale, 3)) * 255).astype(np.uint8))
    up = open_upscaler(model)
    before = proc_status_kb("VmRSS")
    t0 = time.perf_counter()
    out = upscale_photo(up, photo, scale, tile=tile)
    seconds = time.perf_counter() - t0
    print(json.dumps({"tile": tile, "output": list(out.pixels.shape), "seconds": seconds,
                      "rss_before_mb": before / 1024, "peak_rss_mb": proc_status_kb("VmHWM") / 1024,
                      "torch_loaded": "torch" in sys.modules}))


def export_random_student(path: Path) -> None:
    import onnx
    import torch

    from edgesr.artifact import ArtifactMeta
    from edgesr.export.onnx_export import set_metadata
    from edgesr.models import student_arch

    torch.manual_seed(0)
    torch.onnx.export(student_arch().eval(), torch.rand(1, 1, 32, 32), str(path), input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}},
                      opset_version=17, dynamo=False)
    meta = ArtifactMeta(scale=2, input_kind="bicubic", precision="fp32", model="random VDSR-half")
    onnx.save(set_metadata(onnx.load(str(path)), meta), str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="an edgesr ONNX artifact (default: a random VDSR-half)")
    ap.add_argument("--whole", action="store_true", help="also run untiled, for comparison (needs GBs)")
    ap.add_argument("--size", type=int, nargs=2, default=[4000, 3000], metavar=("W", "H"))
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, tile, w, h, s = args.child
        child(model, int(tile), int(w), int(h), int(s))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(Path(tmp) / "student_random.onnx")
        if not args.model:
            export_random_student(Path(model))
        runs = []
        for tile in [512] + ([max(args.size)] if args.whole else []):
            cmd = [sys.executable, __file__, "--child", model, str(tile), str(args.size[0]), str(args.size[1]), "2"]
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(runs[-1])
    from edgesr.io import write_json

    write_json(RESULTS / "upscale_memory.json", {"model": args.model or "random VDSR-half (fp32 ONNX)", "scale": 2,
                                                  "runs": runs})


if __name__ == "__main__":
    main()
