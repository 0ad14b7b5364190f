"""Quality and CPU latency of every export form, on Set5 and Set14 x2/x3/x4.

    PYTHONPATH=. python benchmarks/export_quality.py [--model pytorch-vdsr] [--run RUN_DIR]
        [--calib-images DIR] [--qad-steps 200] [--json benchmarks/results/export_quality.json]

* FP32 ONNX (``bicubic`` and ``lr`` input kinds) against torch: max abs difference and PSNR.
* FP16 ONNX: PSNR drop against the FP32 ONNX.
* INT8, both forms (TensorRT QDQ, CPU QDQ), each calibration method, data-free (the run's
  generators; without ``--run`` a randomly initialised generator, i.e. DFSR's starting point)
  and from an image folder (``--calib-images``, 20 images of train291 by default, never
  Set5/Set14); with and without quantization-aware distillation (default method only).
* 2-thread CPU latency of each form at a 512x512 output (the ``lr`` graph, x2).

The INT8 models are exported with the ``bicubic`` input kind: the network is the same for
every scale, and the in-graph bicubic (checked exact above) adds nothing to quantize. The
method comparison runs on Set5 only; the default method on both sets. CPU timings on a shared
machine are disturbed by other jobs: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgesr.data.benchmark import degrade, open_set
from edgesr.distill.generator import Generator, save_generators
from edgesr.evaluate import score_pairs
from edgesr.export.calibration import Calibration, lr_samples, model_inputs
from edgesr.export.deploy_net import DeployNet
from edgesr.export.onnx_export import torch_to_onnx
from edgesr.export.pipeline import DEFAULT_FLOAT_LAYERS, DEFAULT_METHOD, CALIB_SAMPLES
from edgesr.export.qad import distill_quantized
from edgesr.export.quantize import FORMS, METHODS, calibrate, conv_layers, quantize
from edgesr.export.source import load_source
from edgesr.io import write_json
from edgesr.models.predict import torch_predictor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCALES = (2, 3, 4)


def session(model: onnx.ModelProto, threads: int = 2) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def predictor(model: onnx.ModelProto):
    s = session(model)
    return lambda y, scale: s.run(None, {"input": y[None, None]})[0][0, 0]


def psnr_table(predict, sets, scales) -> dict:
    return {b.name: {str(s): score_pairs(predict, b.pairs(s), b.name, with_ssim=False).psnr for s in scales}
            for b in sets}


def drop(table: dict, ref: dict) -> dict:
    return {k: {s: round(v - ref[k][s], 4) for s, v in by.items()} for k, by in table.items()}


def latency(model: onnx.ModelProto, side: int, runs: int = 3) -> float:
    s = session(model)
    x = np.random.default_rng(0).random((1, 1, side, side), dtype=np.float32)
    s.run(None, {"input": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, {"input": x})
        times.append(time.perf_counter() - t)
    return round(1000 * float(np.median(times)), 1)


def torch_vs_onnx(net, sets) -> dict:
    """Max abs output difference and PSNR difference, both input kinds, on every image."""
    out: dict = {}
    torch_pred = torch_predictor(net)
    for s in SCALES:
        sessions = {kind: session(torch_to_onnx(DeployNet(net, s, kind))) for kind in ("bicubic", "lr")}
        for b in sets:
            stats = {kind: ([], [], []) for kind in sessions}
            for pair in b.pairs(s):
                bic = (pair.bicubic_y / 255).astype(np.float32)
                y_torch = torch_pred(bic, s)
                p_torch = score_pairs(lambda *_: y_torch, [pair], b.name, False).psnr
                for kind, sess in sessions.items():
                    x = degrade(pair.gt_y / 255, s)[0].astype(np.float32) if kind == "lr" else bic
                    y = sess.run(None, {"input": x[None, None]})[0][0, 0]
                    diffs, p_onnx, p_ref = stats[kind]
                    diffs.append(float(np.abs(y - y_torch).max()))
                    p_onnx.append(score_pairs(lambda *_: y, [pair], b.name, False).psnr)
                    p_ref.append(p_torch)
            for kind, (diffs, p_onnx, p_ref) in stats.items():
                out.setdefault(kind, {}).setdefault(b.name, {})[str(s)] = {
                    "max_abs_diff": max(diffs), "psnr_diff": float(np.mean(p_onnx) - np.mean(p_ref)),
                    "psnr_torch": float(np.mean(p_ref))}
                print(kind, b.name, s, out[kind][b.name][str(s)], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="pytorch-vdsr")
    ap.add_argument("--run", type=Path, help="distill run folder (generators.safetensors)")
    ap.add_argument("--calib-images", type=Path, help="image folder for the comparison (default: 20 of train291)")
    ap.add_argument("--qad-steps", type=int, default=30, help="0 skips QAD (about 5 s a step on 2 CPU cores)")
    ap.add_argument("--skip-torch", action="store_true", help="skip the torch comparison (slow on CPU)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "export_quality.json")
    args = ap.parse_args()

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="edgesr-bench-"))
    source = load_source(args.model)
    net = source.net
    sets = [open_set(DATA / "Set5"), open_set(DATA / "Set14")]
    result: dict = {"model": args.model, "sha256": source.sha256, "note":
                    "CPU timings on a 2-core machine shared with other jobs; compare rows of one run only"}

    run = args.run
    if run is None:
        run = work / "random_run"
        torch.manual_seed(0)
        save_generators({2: Generator(24), 3: Generator(16), 4: Generator(12)}, run)
        result["generators"] = "randomly initialised (no distill run yet)"
    images = args.calib_images
    if images is None:
        images = work / "train291_20"
        images.mkdir()
        for p in sorted((DATA / "train291").iterdir())[::14][:20]:
            (images / p.name).symlink_to(p)
    calibs = {"data-free": Calibration("generators", run), "images": Calibration("images", images)}
    result["calibration_images"] = sorted(p.name for p in images.iterdir())

    if not args.skip_torch:
        result["onnx_vs_torch"] = torch_vs_onnx(net, sets)

    fp32 = torch_to_onnx(DeployNet(net, 2, "bicubic"))
    ref = psnr_table(predictor(fp32), sets, SCALES)
    result["fp32_onnx_psnr"] = ref
    print("fp32", ref, flush=True)
    fp16 = torch_to_onnx(DeployNet(net, 2, "bicubic", half=True))
    result["fp16_drop"] = drop(psnr_table(predictor(fp16), sets, SCALES), ref)
    print("fp16 drop", result["fp16_drop"], flush=True)

    layers = conv_layers(fp32).net
    float_names = [layers[i] for i in DEFAULT_FLOAT_LAYERS]
    set5 = sets[:1]
    int8: dict = {}
    lr = {(c, s): lr_samples(calibs[c], s, CALIB_SAMPLES) for c in calibs for s in SCALES}

    def evaluate_int8(float_model: onnx.ModelProto, calib: str, method: str, form: str, eval_sets) -> dict:
        table = {}
        for s in SCALES:
            ranges = calibrate(float_model, model_inputs(lr[calib, s], s, "bicubic"), method,
                               work / f"{calib}_{method}_{s}_{id(float_model)}.json")
            q = quantize(float_model, ranges, form, float_names)
            for b in eval_sets:
                table.setdefault(b.name, {})[str(s)] = score_pairs(predictor(q), b.pairs(s), b.name, False).psnr
        return drop(table, ref)

    for calib in calibs:
        for method in METHODS:
            for form in FORMS:
                eval_sets = sets if method == DEFAULT_METHOD else set5
                key = f"{form}/{calib}/{method}/ptq"
                int8[key] = evaluate_int8(fp32, calib, method, form, eval_sets)
                print(key, int8[key], flush=True)
                write_json(args.json, {**result, "int8_drop": int8})
    if args.qad_steps:
        for calib in ("data-free",):
            pool = {s: lr_samples(calibs[calib], s, 8 * CALIB_SAMPLES, seed=1) for s in SCALES}
            for form in FORMS:
                t = time.time()
                tuned = distill_quantized(net, pool, list(DEFAULT_FLOAT_LAYERS), form, args.qad_steps, batch=4)
                key = f"{form}/{calib}/{DEFAULT_METHOD}/qad{args.qad_steps}"
                int8[key] = evaluate_int8(torch_to_onnx(DeployNet(tuned, 2, "bicubic")), calib, DEFAULT_METHOD,
                                          form, sets)
                print(key, f"({time.time() - t:.0f} s)", int8[key], flush=True)
                write_json(args.json, {**result, "int8_drop": int8})
    result["int8_drop"] = int8

    lr_graph = torch_to_onnx(DeployNet(net, 2, "lr"))
    ranges = calibrate(lr_graph, lr[("images", 2)], DEFAULT_METHOD, work / "lat.json")
    forms = {"fp32": lr_graph, "fp16 (runs as fp32 on CPU)": torch_to_onnx(DeployNet(net, 2, "lr", half=True)),
             **{f"int8 {f}": quantize(lr_graph, ranges, f, [conv_layers(lr_graph).net[i] for i in DEFAULT_FLOAT_LAYERS])
                for f in FORMS}}
    result["latency_ms_512_out_2threads"] = {k: latency(m, 256) for k, m in forms.items()}
    print("latency", result["latency_ms_512_out_2threads"], flush=True)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
