"""The end-of-run evaluation of ``edgesr distill``: before and after it was made cheaper.

Both score a half-width student and the teacher on the benchmark sets at every scale, on the
same threads:

* **before**: each model through torch, one ``evaluate`` call each, every set read and the
  bicubic numbers computed once per model (what ``finish`` did until then); the teacher's rows
  were cached by folder path already, so a second run paid the student's part alone;
* **after, cold cache**: one pass per set and scale (pairs read once, bicubic computed once),
  both models through onnxruntime on their ONNX export (:func:`edgesr.models.predict.benchmark_predictor`,
  export time included), the teacher's rows written to the score cache;
* **after, warm cache**: a second run: the teacher and bicubic rows come from the cache.

It also reports the largest PSNR/SSIM difference between the torch and onnxruntime scores.
The student is the teacher pruned to 32 channels (the quick recipe's initialisation): timing
does not depend on training. Writes ``benchmarks/results/final_eval.json``.

    OMP_NUM_THREADS=1 python benchmarks/final_eval.py --data ../shared/data/Set5 ../shared/data/Set14
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

from edgesr import threads
from edgesr.cache import ScoreCache
from edgesr.data.benchmark import open_set
from edgesr.evaluate import Row, evaluate, evaluate_rows
from edgesr.export import onnx_export  # noqa: F401 (imported before timing starts)
from edgesr.models.predict import benchmark_predictor, torch_predictor
from edgesr.models.prune import prune_to_width
from edgesr.models.zoo import load_model

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["../shared/data/Set5", "../shared/data/Set14"])
    ap.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=str(RESULTS / "final_eval.json"))
    args = ap.parse_args()

    choice = threads.choose(args.threads)
    threads.apply(choice)
    teacher, meta = load_model("pytorch-vdsr")
    student = prune_to_width(teacher, 32).eval()
    sets = [open_set(d) for d in args.data]
    load_before = os.getloadavg()
    out: dict = {"threads": choice.threads, "thread_reason": choice.reason, "cpu": platform.processor() or
                 platform.machine(), "cores": os.cpu_count(), "sets": [s.name for s in sets], "scales": args.scales}

    t = time.perf_counter()
    before = {"student": evaluate(torch_predictor(student), sets, args.scales)}
    out["before_student_s"] = round(time.perf_counter() - t, 1)
    before["teacher"] = evaluate(torch_predictor(teacher), sets, args.scales)
    out["before_s"] = round(time.perf_counter() - t, 1)
    print(f"before (torch, one evaluate per model): {out['before_s']} s, of which the student "
          f"{out['before_student_s']} s (a second run, the teacher then cached by folder path)", flush=True)

    with tempfile.TemporaryDirectory() as home:
        def rows() -> dict[str, Row]:
            return {"student": Row(lambda: benchmark_predictor(student)),
                    "teacher": Row(lambda: benchmark_predictor(teacher), store=ScoreCache(meta["sha256"], Path(home)))}

        t = time.perf_counter()
        after = evaluate_rows(rows(), sets, args.scales)
        out["after_cold_s"] = round(time.perf_counter() - t, 1)
        print(f"after, cold cache: {out['after_cold_s']} s", flush=True)
        t = time.perf_counter()
        evaluate_rows(rows(), sets, args.scales)
        out["after_warm_s"] = round(time.perf_counter() - t, 1)
        print(f"after, warm cache (student only): {out['after_warm_s']} s", flush=True)

    diffs = [(abs(a.psnr - b.psnr), abs(a.ssim - b.ssim)) for m in before for a, b in zip(before[m], after[m])]
    out["max_abs_psnr_diff_db"] = max(d[0] for d in diffs)
    out["max_abs_ssim_diff"] = max(d[1] for d in diffs)
    out["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    out["torch"] = torch.__version__
    out["teacher_sha256"] = meta["sha256"]
    out["scores_before"] = {m: [s.to_dict() for s in v] for m, v in before.items()}
    out["scores_after"] = {m: [s.to_dict() for s in v] for m, v in after.items()}
    print(json.dumps({k: v for k, v in out.items() if not k.startswith("scores")}, indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
