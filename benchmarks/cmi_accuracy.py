"""Does CMI's projection head tell the generators' samples apart in a real run?

    python benchmarks/cmi_accuracy.py RUN_DIR [--windows 3]

Reads the run's ``metrics.jsonl`` and reports, per window of generator steps, the logged
instance-discrimination top-1 accuracy of the current batch (each sample's local view against
its own global view, the batch's other samples and the bank negatives) beside its chance
level, and the InfoNCE loss beside the loss at chance (the batch term and the bank term each
ln(rows) when every row is equally likely). Writes ``benchmarks/results/cmi_accuracy.json``.

The run it was written for (generators only, a generator step after every student step):

    edgesr distill --recipe fast-paper --threads 1 --set batch_size=8 student_steps_per_gen_step=1 \\
        "progressive.steps=[300]" budget_minutes=0 cmi.bank_size=1024 cmi.negatives=256 \\
        "evaluation.sets=[]" log_every=10
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def read_log(path: Path) -> list[dict]:
    """The generator-step rows of a run log (rows without CMI fields are skipped)."""
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise SystemExit(f"{path}:{n}: not a JSON object")
        if all(isinstance(row.get(k), (int, float)) for k in ("step", "g_cr", "g_cr_acc", "g_cr_chance")):
            rows.append(row)
    if not rows:
        raise SystemExit(f"{path}: no generator step with CMI logged (g_cr, g_cr_acc, g_cr_chance)")
    return rows


def summarise(rows: list[dict], windows: int) -> list[dict]:
    last = rows[-1]["step"]
    out = []
    for w in range(windows):
        lo, hi = last * w / windows, last * (w + 1) / windows
        part = [r for r in rows if lo < r["step"] <= hi]
        if not part:
            continue
        acc = sum(r["g_cr_acc"] for r in part) / len(part)
        chance = sum(r["g_cr_chance"] for r in part) / len(part)
        loss = sum(r["g_cr"] for r in part) / len(part)
        loss_chance = sum(2 * math.log(1 / r["g_cr_chance"]) for r in part) / len(part)
        out.append({"steps": [round(lo), round(hi)], "accuracy": round(acc, 4), "chance": round(chance, 4),
                    "times_chance": round(acc / chance, 1), "loss": round(loss, 3),
                    "loss_at_chance": round(loss_chance, 3)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cmi_accuracy.json")
    args = ap.parse_args()
    log = args.run / "metrics.jsonl"
    if not log.is_file():
        raise SystemExit(f"{args.run}: no metrics.jsonl (not a run folder)")
    table = summarise(read_log(log), args.windows)
    print("| steps | top-1 accuracy | chance | x chance | InfoNCE | at chance |")
    print("|---|---|---|---|---|---|")
    for t in table:
        print(f"| {t['steps'][0]}-{t['steps'][1]} | {t['accuracy']:.4f} | {t['chance']:.4f} | {t['times_chance']} "
              f"| {t['loss']:.2f} | {t['loss_at_chance']:.2f} |")
    recipe = (args.run / "recipe.yaml").read_text() if (args.run / "recipe.yaml").is_file() else ""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"run": args.run.name, "recipe": recipe, "windows": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
