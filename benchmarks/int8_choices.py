"""Which INT8 export settings lose least, per student and scale, judged on validation only.

    PYTHONPATH=. python benchmarks/int8_choices.py --run runs/distill/quick-edge \
        --choices default method=mse float_layers=auto:3 lr_patch=48 samples=256 qad_steps=300 \
        --threads 2 --out benchmarks/results/int8_choices

For every scale the run folder trained: the student in FP32 ONNX and, for each choice (a
comma-separated list of :class:`edgesr.export.int8.Int8Settings` fields; ``default`` is
``edgesr export``'s), the CPU-form INT8 model made by the exporter's own code path, calibrated
data-free on what taught the run. Each is scored through onnxruntime on centre crops of the
held-out train291 images (the split every choice of this project is made on; Set5/Set14 are
never read).

The ranking is by *quantization noise*: the mean squared difference between the INT8 and the
FP32 outputs (8-bit units, the protocol's border excluded). A PSNR drop depends on the image as
much as on the quantizer: the same added noise costs 0.015 dB on these photos, where the student
makes 28 dB, and four times that on a 37 dB test set. The noise is what the export controls, and
it predicts the drop anywhere: ``10 log10(1 + noise / mse)`` for a student of error ``mse``. The
table also gives the validation drop itself and the INT8 latency at a 512x512 output (``--threads``
onnxruntime threads; the relative cost of keeping convs in float).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from edgesr import threads
from edgesr.bench.measure import time_calls
from edgesr.data.splits import holdout, validation_pairs
from edgesr.evaluate import score_pairs
from edgesr.export.calibration import find_calibration
from edgesr.export.deploy_net import DeployNet
from edgesr.export.int8 import Int8Settings, int8_onnx
from edgesr.export.onnx_export import torch_to_onnx
from edgesr.export.quantize import cpu_session
from edgesr.io import write_json
from edgesr.models.zoo import load_model, weights_in_run
from edgesr.ops import shave
from edgesr.ops.metrics import PEAK

FIELDS = [f.name for f in dataclasses.fields(Int8Settings)]
FIELD_KINDS = {"method": str, "float_layers": str, "qad_lr": float, "equalize": float}


def parse_choice(text: str) -> Int8Settings:
    """``default`` or ``field=value,...`` over Int8Settings (ints where the default is an int)."""
    if text == "default":
        return Int8Settings()
    values = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in FIELDS:
            raise SystemExit(f"unknown setting {key!r} in {text!r}: one of {', '.join(FIELDS)}")
        kind = FIELD_KINDS.get(key, int)
        values[key] = kind(value)
    return Int8Settings(**values)


class Outputs:
    """A session's outputs on the validation pairs, kept for the noise against FP32."""

    def __init__(self, model, pairs) -> None:
        self.session = cpu_session(model)
        self.images: list[np.ndarray] = []
        self.psnr = score_pairs(self.predict, pairs, "val", with_ssim=False, input_kind="lr").psnr

    def predict(self, x: np.ndarray, scale: int) -> np.ndarray:
        y = self.session.run(None, {"input": x[None, None]})[0][0, 0]
        self.images.append(shave(np.clip(y, 0, 1) * PEAK, scale))  # the protocol's clip and border
        return y

    def noise(self, reference: Outputs) -> float:
        return float(np.mean([np.mean((a - b) ** 2) for a, b in zip(self.images, reference.images)]))

    def latency_ms(self, scale: int, size: int = 512) -> float:
        x = np.random.default_rng(0).random((1, 1, size // scale, size // scale), np.float32)
        times = time_calls(lambda: self.session.run(None, {"input": x}), warmup=2, runs=10)
        return float(np.median(times) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished distill run folder")
    ap.add_argument("--choices", nargs="+", default=["default"])
    ap.add_argument("--scales", type=int, nargs="+", default=None, help="default: every scale the run trained")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-images", type=int, default=24, help="held out at the end of train291")
    ap.add_argument("--val-crop", type=int, default=192)
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "int8_choices")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    threads.apply(threads.choose(args.threads))
    choices = {c: parse_choice(c) for c in args.choices}
    files = json.loads((args.run / "results.json").read_text())["files"]
    scales = args.scales or ([2, 3, 4] if "all" in files else sorted(int(k) for k in files))
    _, paths = holdout(args.data_root / "train291", args.val_images)
    pairs = validation_pairs(paths, scales, args.val_crop)
    calib = None
    rows: dict[str, dict] = {c: {} for c in choices}
    fp32: dict[int, float] = {}
    for s in scales:
        weights = weights_in_run(args.run, s)
        net, _ = load_model(str(weights))
        calib = find_calibration(None, str(weights))
        reference = Outputs(torch_to_onnx(DeployNet(net, s, "lr")), pairs[s])
        fp32[s] = {"psnr": reference.psnr, "ms": reference.latency_ms(s)}
        for name, settings in choices.items():
            t0 = time.perf_counter()
            model, made = int8_onnx(net, s, "lr", calib, "cpu", settings)
            seconds = time.perf_counter() - t0
            outputs = Outputs(model, pairs[s])
            rows[name][s] = {"noise": outputs.noise(reference), "drop": outputs.psnr - reference.psnr,
                             "ms": outputs.latency_ms(s), "float_layers": made["float_layers"],
                             "export_seconds": round(seconds, 1)}
            r = rows[name][s]
            print(f"x{s} {name:40s} noise {r['noise']:.4f}  drop {r['drop']:+.4f} dB  {r['ms']:.2f} ms  "
                  f"float {r['float_layers']}  ({r['export_seconds']} s)", flush=True)
    for r in rows.values():
        r["mean_noise"] = float(np.mean([r[s]["noise"] / rows["default"][s]["noise"] for s in scales])) \
            if "default" in rows else float(np.mean([r[s]["noise"] for s in scales]))
        r["mean_drop"] = float(np.mean([r[s]["drop"] for s in scales]))
    out = {"run": str(args.run), "scales": scales, "fp32_val_psnr": fp32, "calibration": calib.describe(),
           "validation": {"images": args.val_images, "crop": args.val_crop}, "threads": args.threads,
           "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
           "choices": {c: {"settings": dataclasses.asdict(choices[c]), **rows[c]} for c in choices}}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "int8_choices.json", out)
    relative = "default" in rows
    fp32_ms = ", ".join(f"x{s} {fp32[s]['ms']:.2f}" for s in scales)
    lines = [f"INT8 (CPU form) against FP32 on {args.val_images} held-out train291 centre crops of "
             f"{args.val_crop} px; run `{args.run}`. Noise: mean squared INT8 - FP32 output (8-bit units)"
             + ("; mean: relative to `default`, averaged over scales" if relative else "")
             + f"; drop: validation PSNR, dB; ms: INT8 at 512x512 output, {args.threads} thread(s) "
             f"(FP32: {fp32_ms})", "",
             "| choice | " + " | ".join(f"x{s} noise | x{s} drop | x{s} ms" for s in scales)
             + " | mean noise | mean drop | float convs |",
             "|---|" + "---|" * (3 * len(scales) + 3)]
    for c in sorted(choices, key=lambda c: rows[c]["mean_noise"]):
        cells = " | ".join(f"{rows[c][s]['noise']:.4f} | {rows[c][s]['drop']:+.4f} | {rows[c][s]['ms']:.2f}"
                           for s in scales)
        floats = " ".join(str(rows[c][s]["float_layers"]) for s in scales)
        lines.append(f"| {c} | {cells} | {rows[c]['mean_noise']:.3f} | {rows[c]['mean_drop']:+.4f} | {floats} |")
    (args.out / "int8_choices.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
