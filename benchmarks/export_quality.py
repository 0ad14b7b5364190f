"""Quality and CPU latency of every export form, and the measurements the INT8 defaults rest on.

    PYTHONPATH=. python benchmarks/export_quality.py --model runs/distill/quick/student.safetensors \
        --run runs/distill/quick [--stages methods,float,qad] [--qad-steps 300] [--json OUT]

* FP32 ONNX (``bicubic`` and ``lr`` input kinds) against torch: max abs difference and PSNR.
* FP16 ONNX: PSNR drop against the FP32 ONNX.
* INT8, both forms (TensorRT QDQ, CPU QDQ), PSNR drop against FP32 on three sets: ``val``
  (centre crops of the 8 held-out train291 images: the only set any default is chosen on),
  Set5 and Set14, x2/x3/x4.
  - ``methods``: every calibration method, data-free (what taught the run: its priors or generators) and from an image
    folder (20 train291 images, none held out), the head and tail kept float;
  - ``float``: which convs stay float, fixed ``0,-1`` against ``auto:K`` (the K whose
    quantization alone costs most on the calibration samples), data-free;
  - ``qad``: quantization-aware distillation on generator samples before quantizing;
  - ``exporter``: the default ``edgesr export`` (both forms) end to end, evaluated from its files.
* 2-thread CPU latency of each form at a 512x512 output (the ``lr`` graph, x2).

The INT8 models use the ``bicubic`` input kind: the network is the same for every scale, and
the in-graph bicubic (checked exact above) adds nothing to quantize. CPU timings on a shared
machine are disturbed by other jobs: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from edgesr.bench.measure import time_calls
from edgesr.data.benchmark import degrade, open_set
from edgesr.data.splits import holdout, validation_pairs
from edgesr.evaluate import score_pairs
from edgesr.export.calibration import Calibration, find_calibration, lr_samples, model_inputs
from edgesr.export.deploy_net import DeployNet
from edgesr.export.int8 import CALIB_SAMPLES, FloatLayers
from edgesr.export.onnx_export import torch_to_onnx
from edgesr.export.pipeline import ExportRequest, export_model
from edgesr.export.qad import distill_quantized
from edgesr.export.quantize import (
    FORMS,
    METHODS,
    calibrate,
    conv_input_ranges,
    conv_layers,
    cpu_session,
    quantize,
    sensitivity,
)
from edgesr.export.source import load_source
from edgesr.io import write_json
from edgesr.models.predict import torch_predictor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCALES = (2, 3, 4)
#: held-out validation crops (the distiller's split, larger crops for a steadier PSNR)
VAL_IMAGES, VAL_CROP = 8, 256
#: the float-layer choice is the fewest float convs whose worst val drop is within this. It is
#: a fifth of the 0.05 dB target: a margin chosen by hand, because the val crops lose less to
#: quantization than whole benchmark images (not derived from any test-set number)
VAL_MARGIN = 0.01


def predictor(model: onnx.ModelProto):
    s = cpu_session(model)
    return lambda y, scale: s.run(None, {"input": y[None, None]})[0][0, 0]


class Sets:
    """``val``, Set5 and Set14 as ``name -> scale -> pairs``."""

    def __init__(self) -> None:
        _, val = holdout(DATA / "train291", VAL_IMAGES)
        self.pairs = {"val": validation_pairs(val, list(SCALES), VAL_CROP)}
        for name in ("Set5", "Set14"):
            bench = open_set(DATA / name)
            self.pairs[name] = {s: bench.pairs(s) for s in SCALES}

    def psnr(self, model: onnx.ModelProto, scale: int, names) -> dict:
        pred = predictor(model)
        return {n: score_pairs(pred, self.pairs[n][scale], n, with_ssim=False).psnr for n in names}


def drops(table: dict, ref: dict) -> dict:
    """``{set: {scale: drop}}`` from ``{scale: {set: psnr}}``."""
    out: dict = {}
    for s, by_set in table.items():
        for name, v in by_set.items():
            out.setdefault(name, {})[str(s)] = round(v - ref[s][name], 4)
    return out


def worst(d: dict, name: str = "val") -> float:
    return min(d[name].values())


def latency(model: onnx.ModelProto, side: int, runs: int = 5) -> float:
    """Median milliseconds of one call on a ``side x side`` input, after one untimed call."""
    s = cpu_session(model)
    x = np.random.default_rng(0).random((1, 1, side, side), dtype=np.float32)
    return round(1000 * float(np.median(time_calls(lambda: s.run(None, {"input": x}), warmup=1, runs=runs))), 1)


def torch_vs_onnx(net, sets: Sets) -> dict:
    """Max abs output difference and PSNR difference, both input kinds, on every Set5/Set14 image."""
    out: dict = {}
    torch_pred = torch_predictor(net)
    for s in SCALES:
        sessions = {kind: cpu_session(torch_to_onnx(DeployNet(net, s, kind))) for kind in ("bicubic", "lr")}
        for name in ("Set5", "Set14"):
            stats = {kind: ([], [], []) for kind in sessions}
            for pair in sets.pairs[name][s]:
                bic = (pair.bicubic_y / 255).astype(np.float32)
                y_torch = torch_pred(bic, s)
                p_torch = score_pairs(lambda *_, y=y_torch: y, [pair], name, False).psnr
                for kind, sess in sessions.items():
                    x = degrade(pair.gt_y / 255, s)[0].astype(np.float32) if kind == "lr" else bic
                    y = sess.run(None, {"input": x[None, None]})[0][0, 0]
                    diffs, p_onnx, p_ref = stats[kind]
                    diffs.append(float(np.abs(y - y_torch).max()))
                    p_onnx.append(score_pairs(lambda *_, y=y: y, [pair], name, False).psnr)
                    p_ref.append(p_torch)
            for kind, (diffs, p_onnx, p_ref) in stats.items():
                out.setdefault(kind, {}).setdefault(name, {})[str(s)] = {
                    "max_abs_diff": max(diffs), "psnr_diff": float(np.mean(p_onnx) - np.mean(p_ref)),
                    "psnr_torch": float(np.mean(p_ref))}
                print(kind, name, s, out[kind][name][str(s)], flush=True)
    return out


class Bench:
    """Shared state: the float graph, calibration samples and cached ranges/sensitivities."""

    def __init__(self, net, calibs: dict[str, Calibration], sets: Sets, work: Path) -> None:
        self.net, self.calibs, self.sets, self.work = net, calibs, sets, work
        self.fp32 = torch_to_onnx(DeployNet(net, 2, "bicubic"))
        self.layers = conv_layers(self.fp32).net
        self.inputs = {(c, s): model_inputs(lr_samples(cal, s, CALIB_SAMPLES), s, "bicubic")
                       for c, cal in calibs.items() for s in SCALES}
        self.ref = {s: sets.psnr(self.fp32, s, sets.pairs) for s in SCALES}
        self._ranges: dict = {}
        self._costs: dict = {}

    def ranges(self, graph_key: str, graph: onnx.ModelProto, calib: str, method: str, form: str, s: int):
        key = (graph_key, calib, method, form if method == "mse" else None, s)
        if key not in self._ranges:
            self._ranges[key] = calibrate(graph, self.inputs[calib, s], method,
                                          self.work / f"r{len(self._ranges)}.json", form)
        return self._ranges[key]

    def costs(self, method: str, form: str, s: int) -> list[float]:
        key = (method, form, s)
        if key not in self._costs:
            self._costs[key] = sensitivity(self.fp32, self.ranges("fp32", self.fp32, "data-free", method, form, s),
                                           form, self.inputs["data-free", s])
        return self._costs[key]

    def float_idx(self, spec: str, method: str, form: str, s: int) -> list[int]:
        fl = FloatLayers.parse(spec, form)
        return fl.indices(len(self.layers), self.costs(method, form, s) if fl.auto else None)

    def int8_drop(self, calib: str, method: str, form: str, spec: str, names, qad: tuple[int, float] = (0, 0.0)):
        table, chosen = {}, {}
        for s in SCALES:
            idx = self.float_idx(spec, method, form, s)
            graph, key = self.fp32, "fp32"
            if qad[0]:
                pool = {s: lr_samples(self.calibs[calib], s, 8 * CALIB_SAMPLES, seed=1)}
                in_ranges = conv_input_ranges(self.fp32, self.ranges("fp32", self.fp32, calib, method, form, s))
                tuned = distill_quantized(self.net, pool, in_ranges, idx, form, qad[0], lr=qad[1])
                graph, key = torch_to_onnx(DeployNet(tuned, 2, "bicubic")), f"qad{qad}{form}{spec}{s}"
            q = quantize(graph, self.ranges(key, graph, calib, method, form, s), form,
                         [self.layers[i] for i in idx])
            table[s] = self.sets.psnr(q, s, names)
            chosen[str(s)] = idx
        return {"drop": drops(table, self.ref), "float_layers": chosen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="pytorch-vdsr")
    ap.add_argument("--run", type=Path, required=True, help="distill run folder (its recipe says what taught it)")
    ap.add_argument("--stages", default="methods,float,qad,exporter")
    ap.add_argument("--float-choices", default="0,-1 auto:1 auto:2 auto:3 auto:4")
    ap.add_argument("--qad-steps", type=int, default=300)
    ap.add_argument("--qad-lrs", default="1e-5 1e-4")
    ap.add_argument("--skip-torch", action="store_true", help="skip the torch comparison (slow on CPU)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "export_quality_student.json")
    args = ap.parse_args()

    torch.set_num_threads(2)
    stages = set(args.stages.split(","))
    work = Path(tempfile.mkdtemp(prefix="edgesr-bench-"))
    source = load_source(args.model)
    sets = Sets()
    images = work / "train291_20"
    images.mkdir()
    for p in sorted((DATA / "train291").iterdir())[::14][:20]:
        (images / p.name).symlink_to(p)
    # data-free: what taught the run (its prior pool, or its generators when it trained on them)
    calibs = {"data-free": find_calibration(str(args.run), args.model), "images": Calibration("images", images)}
    result: dict = {"model": args.model, "sha256": source.sha256, "run": str(args.run),
                    "calibration": calibs["data-free"].describe(),
                    "calibration_images": sorted(p.name for p in images.iterdir()),
                    "validation": f"centre {VAL_CROP}px crops of the last {VAL_IMAGES} train291 images",
                    "note": "CPU timings on a 2-core machine; compare rows of one run only"}
    save = lambda: write_json(args.json, result)  # noqa: E731
    previous = json.loads(args.json.read_text()) if args.json.is_file() else {}
    # rows of an interrupted run of the same model and calibration are kept, not recomputed
    done_rows = previous.get("int8", {}) if (previous.get("sha256"), previous.get("run")) == (
        source.sha256, str(args.run)) else {}
    if not args.skip_torch:
        result["onnx_vs_torch"] = torch_vs_onnx(source.net, sets)
    t0 = time.time()
    bench = Bench(source.net, calibs, sets, work)
    result["fp32_onnx_psnr"] = {str(s): v for s, v in bench.ref.items()}
    fp16 = torch_to_onnx(DeployNet(source.net, 2, "bicubic", half=True))
    result["fp16_drop"] = drops({s: sets.psnr(fp16, s, sets.pairs) for s in SCALES}, bench.ref)
    print("fp16 drop", result["fp16_drop"], flush=True)
    int8 = result.setdefault("int8", {})
    all_sets = ("val", "Set5", "Set14")

    def row(key: str, *a, **k) -> dict:
        if key in done_rows:
            int8[key] = done_rows[key]
            return int8[key]
        t = time.time()
        int8[key] = {**bench.int8_drop(*a, **k), "seconds": round(time.time() - t, 1)}
        print(f"{key}: {int8[key]}", flush=True)
        save()
        return int8[key]

    if "methods" in stages:
        for calib in calibs:
            for method in METHODS:
                for form in FORMS:
                    row(f"methods/{form}/{calib}/{method}/0,-1", calib, method, form, "0,-1", ("val", "Set5"))
    best_method = {}
    for form in FORMS:
        done = {k.split("/")[3]: v for k, v in int8.items() if k.startswith(f"methods/{form}/data-free/")}
        best_method[form] = max(done, key=lambda m: worst(done[m]["drop"])) if done else "percentile"
    result["best_method_on_val"] = best_method
    best_float = {form: "0,-1" for form in FORMS}
    if "float" in stages:
        for form in FORMS:
            rows = {spec: row(f"float/{form}/{best_method[form]}/{spec}", "data-free", best_method[form], form, spec,
                              all_sets) for spec in args.float_choices.split()}
            # fewest float layers whose worst val drop is within VAL_MARGIN, else the best
            ok = [spec for spec in rows if worst(rows[spec]["drop"]) >= -VAL_MARGIN]
            best_float[form] = min(ok, key=lambda sp: max(len(v) for v in rows[sp]["float_layers"].values())) \
                if ok else max(rows, key=lambda sp: worst(rows[sp]["drop"]))
        result["best_float_on_val"] = best_float
    if "qad" in stages and args.qad_steps:
        for form in FORMS:
            for lr in map(float, args.qad_lrs.split()):
                row(f"qad/{form}/{best_method[form]}/{best_float[form]}/{args.qad_steps}@{lr:g}", "data-free",
                    best_method[form], form, best_float[form], all_sets, qad=(args.qad_steps, lr))
    result["int8_seconds"] = round(time.time() - t0, 1)

    if "exporter" in stages:
        ex = result.setdefault("exporter", {})
        for form, target in (("cpu", "onnx"), ("tensorrt", "tensorrt")):
            table, floats = {}, {}
            for s in SCALES:
                out = work / f"export_{form}_{s}"
                res = export_model(ExportRequest(args.model, target, s, "int8", "bicubic", str(args.run), out))
                model = onnx.load(str(out / "model.onnx" if target == "tensorrt" else out))
                table[s] = sets.psnr(model, s, all_sets)
                floats[str(s)] = res.meta.extra["float_layers"]
            ex[form] = {"drop": drops(table, bench.ref), "float_layers": floats}
            print(f"exporter {form}: {ex[form]}", flush=True)
            save()

    lr_graph = torch_to_onnx(DeployNet(source.net, 2, "lr"))
    lat_inputs = model_inputs(lr_samples(calibs["data-free"], 2, CALIB_SAMPLES), 2, "lr")
    forms = {"fp32": lr_graph, "fp16 (runs as fp32 on CPU)": torch_to_onnx(DeployNet(source.net, 2, "lr", half=True))}
    for form in FORMS:
        ranges = calibrate(lr_graph, lat_inputs, best_method[form], work / f"lat_{form}.json", form)
        names = conv_layers(lr_graph).net
        for spec in dict.fromkeys(("0,-1", best_float[form])):
            fl = FloatLayers.parse(spec, form)
            idx = fl.indices(len(names), sensitivity(lr_graph, ranges, form, lat_inputs) if fl.auto else None)
            forms[f"int8 {form} float {spec} {idx}"] = quantize(lr_graph, ranges, form, [names[i] for i in idx])
    result["latency_ms_512_out_2threads"] = {k: latency(m, 256) for k, m in forms.items()}
    print("latency", result["latency_ms_512_out_2threads"], flush=True)
    save()


if __name__ == "__main__":
    main()
