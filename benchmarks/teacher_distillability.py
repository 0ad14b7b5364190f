"""How well a teacher distils data-free: the `quick` recipe run with each teacher and variant.

    PYTHONPATH=. python benchmarks/teacher_distillability.py [--teachers pytorch-vdsr edgesr-vdsr FILE ...]
        [--variants quick frozen-generators ...] [--set student.width=16 ...] [--json FILE]

The weight-decay test (two small teachers alike but for weight decay, each distilled into a
16x10 student), whose teachers come from
    edgesr teacher train --recipe teacher --data ../shared/data/train291 --scales 2 3 4 --device cpu \
      --out runs/teacher --set name=small-wd width=32 depth=10 batch_size=32 steps=2500 \
      optim.warmup=100 optim.weight_decay=0.0001 validation.every=500 checkpoint_every=500 \
      log_every=100 "evaluation.sets=[]"
(and name=small-nowd with optim.weight_decay=0), is
    PYTHONPATH=. python benchmarks/teacher_distillability.py --variants quick frozen-generators \
      --teachers runs/teacher/small-nowd/teacher.safetensors runs/teacher/small-wd/teacher.safetensors \
      --set student.width=16 student.depth=10 --json benchmarks/results/teacher_distillability_weight_decay.json

Two teachers that score within 0.1 dB of each other on real images can give students that differ
by more than 1 dB: the student only ever sees generator samples, and learns whatever the teacher
does on them. This runs `edgesr distill --recipe quick` (Set5/Set14 evaluation off) per teacher
and variant, scores it on the held-out validation split only, and explains each student by its
residual on the validation crops: ``align`` = <r, g> / |g|^2 and ``energy`` = |r|^2 / |g|^2,
with r the student's residual (output minus bicubic) and g the true one. The student removes
the fraction ``2 align - energy`` of bicubic's squared error (before clipping and the border
shave): one whose energy exceeds twice its alignment falls below bicubic.

Run folders go to --out; a finished one is read back instead of rerun, an interrupted one is
resumed. Prints a table and writes benchmarks/results/teacher_distillability.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgesr.data.splits import holdout, validation_pairs
from edgesr.distill.command import distill
from edgesr.evaluate import bicubic_predictor, validation_psnr
from edgesr.models.predict import torch_predictor
from edgesr.models.zoo import is_zoo_name, load_model

#: variant -> recipe overrides on top of `quick`; each is run with every teacher
VARIANTS: dict[str, list[str]] = {
    "quick": [],
    "frozen-generators": ["generator.frozen=true"],
    "frozen-generators-lr4e-4": ["generator.frozen=true", "student_optim.lr=0.0004"],
    "lr6e-4": ["student_optim.lr=0.0006"],
    "no-cmi": ["losses.w_c=0"],
}
SCALES = (2, 3, 4)


def teacher_label(teacher: str) -> str:
    """The run folder's parent: a zoo name as is, a weights file as ``<its folder>-<its stem>``
    (``edgesr teacher train`` names every file ``teacher.safetensors``)."""
    path = Path(teacher)
    return teacher if is_zoo_name(teacher) else f"{path.parent.name}-{path.stem}"


def run_variant(teacher: str, variant: str, extra: list[str], out: Path, console: Console) -> Path:
    parent = out / teacher_label(teacher)
    run_dir = parent / variant
    if (run_dir / "results.json").is_file():
        return run_dir
    if (run_dir / "checkpoint.pt").is_file():
        return distill(resume=run_dir, console=console)[0]
    return distill("quick", [f"name={variant}", "evaluation.sets=[]", *extra, *VARIANTS[variant]], teacher,
                   out=parent, console=console)[0]


def residual_fit(model: torch.nn.Module, pairs: dict) -> dict[int, dict[str, float]]:
    """Mean over validation crops of the student residual's alignment and energy, per scale."""
    predict = torch_predictor(model)
    out = {}
    for s, items in pairs.items():
        align, energy = [], []
        for p in items:
            r = np.asarray(predict(p.bicubic_y / 255.0, s), np.float64) - p.bicubic_y / 255.0
            g = (p.gt_y - p.bicubic_y) / 255.0
            gg = float((g * g).sum())
            align.append(float((r * g).sum()) / gg)
            energy.append(float((r * r).sum()) / gg)
        out[s] = {"align": float(np.mean(align)), "energy": float(np.mean(energy))}
    return out


def weight_norm(model: torch.nn.Module) -> float:
    """Geometric mean of the conv weights' Frobenius norms.

    Bias-free ReLU layers can trade scale between them without changing the function, so only
    the mean says how large the weights are; training without weight decay lets it grow.
    """
    return float(torch.stack([p.detach().float().norm().log() for p in model.parameters()]).mean().exp())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teachers", nargs="+", default=["pytorch-vdsr", "edgesr-vdsr"],
                    help="zoo names or weights files")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[],
                    help="overrides for every run (a smaller student for a smaller teacher)")
    ap.add_argument("--out", type=Path, default=Path("runs/distillability"))
    ap.add_argument("--data", default="../shared/data/train291",
                    help="the folder the recipe's validation split comes from")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "teacher_distillability.json")
    args = ap.parse_args()
    console = Console(width=160)  # the table stays readable when written to a log file
    _, val_paths = holdout(args.data, 8)
    pairs = validation_pairs(val_paths, list(SCALES), 96)
    bicubic_val = validation_psnr(bicubic_predictor, pairs)
    bicubic = {s: bicubic_val[f"val_psnr_x{s}"] for s in SCALES}
    rows = []
    for teacher, variant in ((t, v) for t in args.teachers for v in args.variants):
        run_dir = run_variant(teacher, variant, args.set, args.out, console)
        val = json.loads((run_dir / "results.json").read_text())["validation"]
        student, _ = load_model(str(run_dir / "student.safetensors"))
        rows.append({"variant": variant, "teacher": teacher, "overrides": [*args.set, *VARIANTS[variant]],
                     "run": str(run_dir),
                     "val_psnr": {s: val[f"val_psnr_x{s}"] for s in SCALES},
                     "gain_over_bicubic": {s: val[f"val_psnr_x{s}"] - bicubic[s] for s in SCALES},
                     "residual": residual_fit(student.float(), pairs)})
    teachers = {}
    for name in args.teachers:
        net = load_model(name)[0].float()
        val = validation_psnr(torch_predictor(net), pairs)
        teachers[name] = {"val_psnr": {s: val[f"val_psnr_x{s}"] for s in SCALES}, "weight_norm": weight_norm(net)}
    table = Table(title="quick recipe per teacher and variant: validation PSNR gain over bicubic (dB), "
                        "student residual align / energy")
    for col in ("variant", "teacher", *(f"x{s} gain" for s in SCALES), *(f"x{s} align/energy" for s in SCALES)):
        table.add_column(col)
    for r in rows:
        table.add_row(r["variant"], teacher_label(r["teacher"]), *(f"{r['gain_over_bicubic'][s]:+.3f}" for s in SCALES),
                      *(f"{r['residual'][s]['align']:.3f} / {r['residual'][s]['energy']:.3f}" for s in SCALES))
    console.print(table)
    for name, t in teachers.items():
        console.print(f"teacher {name}: validation PSNR " + " / ".join(f"{t['val_psnr'][s]:.3f}" for s in SCALES)
                      + " dB (bicubic " + " / ".join(f"{bicubic[s]:.3f}" for s in SCALES)
                      + f"), conv weight norm (geometric mean) {t['weight_norm']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"recipe": "quick", "validation_bicubic_psnr": bicubic, "teachers": teachers,
                                     "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
