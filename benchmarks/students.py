"""Every student family at every scale: size, work, quality and speed on the deployment runtime.

    python benchmarks/students.py --run vdsr-half=runs/distill/quick --run lr-plain=runs/distill/quick-edge \
        --run lr-rep=runs/ablation_edge/seed0/edge-rep --threads 2

For each ``LABEL=RUN_FOLDER`` (a finished ``edgesr distill`` run) and each scale it trained:
parameters and multiply-adds per 1280x720 output frame (:mod:`edgesr.models.registry`); the
student exported to ONNX in FP32 and in INT8 (the CPU form, data-free calibration from the run's
own samples, ``edgesr export``'s defaults, which include what the run's recipe says under ``int8``:
300 QAD steps for ``quick-edge``); Set5/Set14 PSNR/SSIM of both through onnxruntime
(the protocol of ``edgesr eval``); and latency at a square output (``--size``, default 512) on
``--threads`` onnxruntime threads, with the FP32 teacher (``pytorch-vdsr``, LR input, in-graph
bicubic) timed in the same run, so the speed-up is a ratio of one run's numbers. The teacher's
PSNR is its shipped, re-measurable score (``edgesr eval``), not recomputed here.

Writes ``benchmarks/results/students.{md,json}`` and the Pareto plot ``students.png`` (PSNR
against latency, log-scaled time, one panel per scale and set). Nothing here chooses anything:
choices are made on validation (``benchmarks/ablation.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from edgesr.bench.rows import bench_artifact
from edgesr.data.benchmark import open_set
from edgesr.export.pipeline import ExportRequest, export_model
from edgesr.models.registry import macs_per_frame, parameters
from edgesr.models.zoo import entry, load_model, weights_in_run
from edgesr.runtime import open_upscaler

TEACHER = "pytorch-vdsr"


def run_scales(run: Path) -> list[int]:
    results = json.loads((run / "results.json").read_text())
    return [int(k) for k in results["files"]] if "all" not in results["files"] else \
        sorted({s["scale"] for s in results["student"]}) or [2, 3, 4]


def measure(label: str, run: Path, scale: int, args: argparse.Namespace, sets: list, out: Path) -> dict:
    weights = weights_in_run(run, scale)
    net, _ = load_model(str(weights))
    row = {"student": label, "run": str(run), "scale": scale, "arch": net.arch or "vdsr",
           "config": net.config() if net.arch else {}, "params": parameters(net),
           "gmac_720p": round(macs_per_frame(net, scale) / 1e9, 3)}
    for precision in ("fp32", "int8"):
        path = out / f"{label}_x{scale}_{precision}.onnx"
        export_model(ExportRequest(str(run), "onnx", scale, precision, out=path, overwrite=True))
        bench = bench_artifact(lambda p=path: open_upscaler(p, args.threads), [args.size], args.warmup, args.runs,
                               sets, [scale], with_ssim=True)
        lat = bench.latency[0]
        row[precision] = {"ms_p50": round(lat.p50_ms, 2), "ms_p90": round(lat.p90_ms, 2),
                          "file_mb": round(bench.file_mb, 3),
                          "psnr": {s.set: round(s.psnr, 3) for s in bench.scores},
                          "ssim": {s.set: round(s.ssim, 4) for s in bench.scores},
                          "bicubic": {s.set: round(s.bicubic_psnr, 3) for s in bench.scores}}
    return row


def teacher_row(scale: int, args: argparse.Namespace, out: Path) -> dict:
    path = out / f"teacher_x{scale}_fp32.onnx"
    export_model(ExportRequest(TEACHER, "onnx", scale, out=path, overwrite=True))
    bench = bench_artifact(lambda: open_upscaler(path, args.threads), [args.size], args.warmup, args.runs, [], None)
    teacher, _ = load_model(TEACHER)
    psnr = {name: by[scale] for name, by in entry(TEACHER).measured_psnr.items()}
    return {"student": "teacher", "scale": scale, "arch": "vdsr (teacher)", "params": parameters(teacher),
            "gmac_720p": round(macs_per_frame(teacher, scale) / 1e9, 3),
            "fp32": {"ms_p50": round(bench.latency[0].p50_ms, 2), "ms_p90": round(bench.latency[0].p90_ms, 2),
                     "psnr": psnr}}


def markdown(out: dict) -> str:
    sets = out["sets"]
    lines = [f"Students at {out['size']}x{out['size']} output, onnxruntime CPU, {out['threads']} thread(s), "
             f"{out['machine']}; p50 of {out['runs']} runs; speed-up against the FP32 teacher timed in the same run. "
             "PSNR (dB, Y, border = scale) through onnxruntime; INT8 is the CPU form with data-free calibration "
             "(`edgesr export` defaults, with the run recipe's `int8` settings: 300 QAD steps for `quick-edge`, none "
             "for the others). `benchmarks/students.py`.", ""]
    head = ["student", "scale", "params", "GMAC/720p", "FP32 ms", "INT8 ms", "INT8 speed-up"]
    for s in sets:
        head += [f"{s} FP32", f"{s} INT8", f"{s} INT8-FP32"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in out["rows"]:
        t = next(x for x in out["teacher"] if x["scale"] == r["scale"])["fp32"]["ms_p50"]
        cells = [r["student"], f"x{r['scale']}", f"{r['params'] / 1e3:.0f}k", f"{r['gmac_720p']:.1f}",
                 f"{r['fp32']['ms_p50']:.1f}", f"{r['int8']['ms_p50']:.1f}", f"{t / r['int8']['ms_p50']:.1f}x"]
        for s in sets:
            f, q = r["fp32"]["psnr"].get(s), r["int8"]["psnr"].get(s)
            cells += [f"{f:.2f}", f"{q:.2f}", f"{q - f:+.3f}"] if f is not None and q is not None else ["—"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    for t in out["teacher"]:
        cells = ["teacher (FP32)", f"x{t['scale']}", f"{t['params'] / 1e3:.0f}k", f"{t['gmac_720p']:.1f}",
                 f"{t['fp32']['ms_p50']:.1f}", "—", "1.0x (FP32)"]
        for s in sets:
            cells += [f"{t['fp32']['psnr'].get(s, float('nan')):.2f}", "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def dominance(out: dict, baseline: str, margin_db: float = 0.05, speed_factor: float = 4.0) -> list[dict]:
    """The Pareto test of the student-registry issue, INT8 against INT8, for every student of
    another family than the baseline's: it dominates the baseline at a scale and set when it is
    more accurate and faster, or within ``margin_db`` of its PSNR at under 1/``speed_factor`` of
    its latency."""
    verdicts = []
    for base in (r for r in out["rows"] if r["student"] == baseline):
        others = (r for r in out["rows"] if r["scale"] == base["scale"] and r["arch"] != base["arch"])
        for r in others:
            for s in out["sets"]:
                psnr, base_psnr = r["int8"]["psnr"].get(s), base["int8"]["psnr"].get(s)
                if psnr is None or base_psnr is None:
                    continue
                ms, base_ms = r["int8"]["ms_p50"], base["int8"]["ms_p50"]
                better = psnr > base_psnr and ms < base_ms
                close = psnr >= base_psnr - margin_db and ms * speed_factor < base_ms
                verdicts.append({"student": r["student"], "baseline": baseline, "scale": r["scale"], "set": s,
                                 "psnr_diff": round(psnr - base_psnr, 3), "latency_ratio": round(base_ms / ms, 2),
                                 "dominates": better or close})
    return verdicts


def dominance_markdown(verdicts: list[dict]) -> str:
    if not verdicts:
        return ""
    lines = ["", f"Pareto test against {verdicts[0]['baseline']} (INT8 against INT8): dominates = higher PSNR at "
             "lower latency, or PSNR within 0.05 dB at under a quarter of its latency.", "",
             "| student | scale | set | PSNR diff dB | times faster | dominates |", "|---|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v['student']} | x{v['scale']} | {v['set']} | {v['psnr_diff']:+.3f} | "
                     f"{v['latency_ratio']:.1f}x | {'yes' if v['dominates'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def plot(out: dict, path: Path) -> None:
    """The Pareto plot: one panel per set and scale, PSNR against log latency, FP32 hollow, INT8 filled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = sorted({r["scale"] for r in out["rows"]})
    sets = out["sets"]
    fig, axes = plt.subplots(len(sets), len(scales), figsize=(4.2 * len(scales), 3.6 * len(sets)), squeeze=False)
    labels = sorted({r["student"] for r in out["rows"]})
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    for i, s in enumerate(sets):
        for j, scale in enumerate(scales):
            ax = axes[i][j]
            for r in (r for r in out["rows"] if r["scale"] == scale):
                for precision, marker in (("fp32", "o"), ("int8", "s")):
                    psnr = r[precision]["psnr"].get(s)
                    if psnr is None:
                        continue
                    ax.scatter(r[precision]["ms_p50"], psnr, color=colors[r["student"]], marker=marker,
                               facecolors="none" if precision == "fp32" else colors[r["student"]],
                               label=f"{r['student']} {precision.upper()}", zorder=3)
            t = next(x for x in out["teacher"] if x["scale"] == scale)
            if s in t["fp32"]["psnr"]:
                ax.scatter(t["fp32"]["ms_p50"], t["fp32"]["psnr"][s], color="black", marker="*", s=90,
                           label="teacher FP32", zorder=3)
            # bicubic goes in the title: as a line it would stretch the axis over 3-4 dB and flatten
            # the tenths of a dB that separate the students
            bic = next((r["fp32"]["bicubic"].get(s) for r in out["rows"] if r["scale"] == scale), None)
            ax.set_xscale("log")
            ax.set_title(f"{s} x{scale}" + (f" (bicubic {bic:.2f} dB)" if bic is not None else ""), fontsize=10)
            ax.set_xlabel(f"ms per {out['size']}x{out['size']} output (log)", fontsize=8)
            ax.set_ylabel("PSNR dB", fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
            ax.tick_params(labelsize=7)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=RUN_DIR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--baseline", default="vdsr-half", help="the LABEL the Pareto test compares against")
    ap.add_argument("--replot", action="store_true", help="only redraw the plot and tables from --out's students.json")
    args = ap.parse_args()
    if args.replot:
        out = json.loads((args.out / "students.json").read_text())
        out["pareto"] = dominance(out, args.baseline)
        (args.out / "students.md").write_text(markdown(out) + dominance_markdown(out["pareto"]))
        plot(out, args.out / "students.png")
        return
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    runs = dict(item.split("=", 1) for item in args.run)
    sets = [open_set(args.data_root / s) for s in ("Set5", "Set14")]
    started = time.time()
    rows, teachers = [], []
    with tempfile.TemporaryDirectory(prefix="edgesr-students-") as tmp:
        work = Path(tmp)
        scales = sorted({s for run in runs.values() for s in run_scales(Path(run))})
        for scale in scales:
            teachers.append(teacher_row(scale, args, work))
            for label, run in runs.items():
                if scale in run_scales(Path(run)):
                    rows.append(measure(label, Path(run), scale, args, sets, work))
                    r = rows[-1]
                    print(f"{label} x{scale}: FP32 {r['fp32']['ms_p50']} ms, INT8 {r['int8']['ms_p50']} ms, "
                          f"teacher {teachers[-1]['fp32']['ms_p50']} ms; INT8 PSNR {r['int8']['psnr']}", flush=True)
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "threads": args.threads, "size": args.size, "runs": args.runs, "sets": [s.name for s in sets],
           "seconds": round(time.time() - started), "load_after": os.getloadavg()[0], "rows": rows,
           "teacher": teachers}
    out["pareto"] = dominance(out, args.baseline)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "students.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "students.md").write_text(markdown(out) + dominance_markdown(out["pareto"]))
    plot(out, args.out / "students.png")
    print(markdown(out) + dominance_markdown(out["pareto"]))


if __name__ == "__main__":
    main()
