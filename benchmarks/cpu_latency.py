"""CPU latency on this machine: teacher vs student, FP32 vs FP16 vs INT8, onnxruntime vs torch,
1 and 2 threads, on a 512x512 output, with every ratio and the achieved GFLOP/s (GOP/s for
INT8) beside this CPU's measured FP32 peak.

    python benchmarks/cpu_latency.py [--size 512] [--runs 5] [--warmup 1] [--student PATH]

Writes ``benchmarks/results/cpu_latency.json`` and ``.md``. Latency does not depend on the
weights, so without ``--student`` a randomly initialised VDSR-half stands in for a trained
one. The artifacts are made by ``edgesr export`` (bicubic input kind, x2; INT8 calibrated on
smooth synthetic images, which sets ranges but not speed). The ONNX rows run through
``edgesr.runtime``, i.e. exactly what ``edgesr bench`` measures.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from edgesr.bench.measure import summarize, time_calls
from edgesr.errors import EdgesrError
from edgesr.io import write_json, write_text
from edgesr.models import VDSR, student_arch
from edgesr.models.formats import save_safetensors
from edgesr.models.zoo import load_model
from edgesr.runtime import open_upscaler

RESULTS = Path(__file__).resolve().parent / "results"
EXPORT_LABEL = ("edgesr export (opset 20, onnxsim; INT8: percentile calibration, head and tail convs in float; "
                "int8-cpu = u8 activations, int8-tensorrt = symmetric s8 activations)")


@dataclass
class Row:
    model: str
    runtime: str
    precision: str
    threads: int
    p50_ms: float
    p90_ms: float
    #: achieved multiply-adds x 2 per second (GFLOP/s for float rows, GOP/s for INT8)
    g_per_s: float
    #: against the measured FP32 GEMM peak (float rows) or u8 x s8 GEMM peak (INT8 rows)
    pct_of_peak: float
    vs_fp32_teacher_ort: float = 0.0
    note: str = ""


def macs_per_pixel(net: VDSR) -> int:
    """Multiply-adds per output pixel of a 3x3 VDSR: the conv weights' count (no bias)."""
    return sum(p.numel() for p in net.parameters())


def gemm_peak(threads: int, int8: bool, n: int = 2048, repeats: int = 5) -> float:
    """Best-of 2048³ GEMM throughput in onnxruntime (MLAS, the kernels its convs use): an honest
    practical peak for ``threads`` cores. FP32: MatMul (GFLOP/s); INT8: u8 x s8 MatMulInteger (GOP/s)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    ta, tb, ty = (TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32) if int8 else (TensorProto.FLOAT,) * 3
    a = helper.make_tensor_value_info("a", ta, [n, n])
    b = helper.make_tensor_value_info("b", tb, [n, n])
    y = helper.make_tensor_value_info("y", ty, [n, n])
    op = "MatMulInteger" if int8 else "MatMul"
    graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["y"])], "gemm", [a, b], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if int8:
        feed = {"a": rng.integers(0, 255, (n, n), dtype=np.uint8), "b": rng.integers(-127, 127, (n, n), dtype=np.int8)}
    else:
        feed = {"a": rng.random((n, n), dtype=np.float32), "b": rng.random((n, n), dtype=np.float32)}
    best = min(time_calls(lambda: sess.run(None, feed), 1, repeats))
    return 2 * n**3 / best / 1e9


def _calibration_images(folder: Path, n: int = 8, side: int = 96, seed: int = 0) -> Path:
    """Smooth random images: INT8 latency does not depend on what calibrated the ranges."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:side, 0:side] / side
    for i in range(n):
        f = rng.uniform(1, 8, 4)
        img = 0.5 + 0.25 * np.sin(f[0] * xx + f[1] * yy) * np.cos(f[2] * xx - f[3] * yy)
        rgb = np.repeat(img[..., None], 3, axis=2) + 0.03 * rng.standard_normal((side, side, 3))
        Image.fromarray((rgb.clip(0, 1) * 255).astype(np.uint8)).save(folder / f"calib{i}.png")
    return folder


def export_variants(weights: Path, name: str, folder: Path, calib: Path) -> dict[str, Path]:
    """FP32, FP16 and both INT8 forms of a bicubic-kind x2 model, through ``edgesr export``."""
    from edgesr.export.pipeline import ExportRequest, export_model
    from edgesr.export.tensorrt import MODEL

    variants = {"fp32": ("onnx", "fp32"), "fp16": ("onnx", "fp16"), "int8-cpu": ("onnx", "int8"),
                "int8-tensorrt": ("tensorrt", "int8")}
    paths = {}
    for label, (target, precision) in variants.items():
        out = folder / f"{name}-{label}" if target == "tensorrt" else folder / f"{name}-{label}.onnx"
        result = export_model(ExportRequest(model=str(weights), target=target, scale=2, precision=precision,
                                            input_kind="bicubic", calib=str(calib), out=out))
        paths[label] = result.path / f"{MODEL}.onnx" if target == "tensorrt" else result.path
    return paths


def measure(fn, x, warmup: int, runs: int) -> tuple[float, float]:
    lat = summarize(x.shape[-1], time_calls(lambda: fn(x), warmup, runs))
    return lat.p50_ms, lat.p90_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="output side in pixels")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--student", help="trained student weights (default: random init, same latency)")
    ap.add_argument("--out", type=Path, default=RESULTS / "cpu_latency.json")
    args = ap.parse_args()

    teacher, _ = load_model("pytorch-vdsr")
    if args.student:
        student, _ = load_model(args.student)
    else:
        torch.manual_seed(0)
        student = student_arch().eval()
    nets = {"teacher": teacher, "student": student}
    x = np.random.default_rng(0).random((args.size, args.size)).astype(np.float32)
    pixels = args.size * args.size
    load_before = os.getloadavg()
    peaks = {t: {"fp32": gemm_peak(t, int8=False), "int8": gemm_peak(t, int8=True)} for t in args.threads}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        calib = _calibration_images(Path(tmp) / "calib")
        weights = {}
        for name, net in nets.items():
            weights[name] = Path(tmp) / f"{name}.safetensors"
            save_safetensors(net, weights[name], {"scales": "[2]"})
        artifacts = {name: export_variants(weights[name], name, Path(tmp), calib) for name in nets}
        for threads in args.threads:
            torch.set_num_threads(threads)
            for name, net in nets.items():
                gop = 2 * macs_per_pixel(net) * pixels / 1e9
                variants = [("torch", "fp32", None)] + [("onnxruntime", p, path) for p, path in artifacts[name].items()]
                for runtime, precision, path in variants:
                    note = "" if path is None else EXPORT_LABEL
                    try:
                        if path is None:
                            with torch.inference_mode():
                                t = torch.from_numpy(x)[None, None]
                                p50, p90 = measure(lambda _, net=net, t=t: net(t), x, args.warmup, args.runs)
                        else:
                            up = open_upscaler(path, threads=threads, providers=["cpu"])
                            p50, p90 = measure(up.infer, x, args.warmup, args.runs)
                    except (EdgesrError, RuntimeError) as exc:
                        print(f"{name} {runtime} {precision} {threads}t: failed: {str(exc).splitlines()[0][:150]}")
                        continue
                    g = gop / (p50 / 1e3)
                    peak = peaks[threads]["int8" if precision.startswith("int8") else "fp32"]
                    rows.append(Row(name, runtime, precision, threads, p50, p90, g, 100 * g / peak, note=note))
                    print(f"{name:8s} {runtime:12s} {precision:11s} {threads}t  p50 {p50:8.1f} ms  {g:7.1f} G/s")
    for r in rows:
        base = next((b.p50_ms for b in rows if b.model == "teacher" and b.runtime == "onnxruntime"
                     and b.precision == "fp32" and b.threads == r.threads), None)
        r.vs_fp32_teacher_ort = base / r.p50_ms if base else float("nan")
    result = {
        "what": f"{args.size}x{args.size} output, bicubic-kind (network only), p50 of {args.runs} runs after "
                f"{args.warmup} warmup; G/s = 2 x MACs / p50 (GFLOP/s float, GOP/s int8)",
        "machine": {"platform": platform.platform(), "cpu": _cpu_name(), "cores": os.cpu_count(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "torch": torch.__version__, "onnxruntime": _ort_version()},
        "peak_g_per_s": {str(t): v for t, v in peaks.items()},
        "macs_per_pixel": {n: macs_per_pixel(net) for n, net in nets.items()},
        "student_weights": args.student or "random init (latency does not depend on weights)",
        "export": EXPORT_LABEL,
        "rows": [asdict(r) for r in rows],
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(args.out, result)
    write_text(args.out.with_suffix(".md"), markdown(result, rows))
    print(markdown(result, rows))


def markdown(result: dict, rows: list[Row]) -> str:
    lines = [f"{result['what']}. CPU: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
             f"load average before/after {result['machine']['loadavg_before'][0]:.2f}/"
             f"{result['machine']['loadavg_after'][0]:.2f} (shared machine: other jobs disturb these numbers).",
             "Peaks measured here (best of 5 GEMMs, 2048³): " + ", ".join(
                 f"{t} thread(s) FP32 {v['fp32']:.0f} GFLOP/s, INT8 {v['int8']:.0f} GOP/s (onnxruntime MatMul, "
                 f"u8xs8 MatMulInteger)" for t, v in result["peak_g_per_s"].items()) + ".",
             f"ONNX rows: {result['export']}. Student weights: {result['student_weights']}.", "",
             "| model | runtime | precision | threads | p50 ms | p90 ms | GFLOP/s or GOP/s | % of peak "
             "| speed-up vs FP32 teacher (ORT, same threads) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.threads, r.p50_ms)):
        lines.append(f"| {r.model} | {r.runtime} | {r.precision} | {r.threads} | {r.p50_ms:.1f} | {r.p90_ms:.1f} | "
                     f"{r.g_per_s:.1f} | {r.pct_of_peak:.0f}% | {r.vs_fp32_teacher_ort:.2f}x |")
    return "\n".join(lines) + "\n"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
