"""benchmarks/table1.py end to end on CPU with a tiny budget, tiny teacher and tiny images."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from edgesr.models.formats import save_safetensors
from tests.cli_helpers import ROOT
from tests.distill_helpers import tiny_teacher


def _images(folder, n, rng, size=48):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(folder / f"im{i:02d}.png")


def test_table1_runs_end_to_end_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    _images(tmp_path / "data" / "Set5" / "gt", 2, rng)
    _images(tmp_path / "data" / "Set14" / "gt", 2, rng)
    _images(tmp_path / "data" / "train291", 4, rng)
    teacher = tmp_path / "t.safetensors"
    save_safetensors(tiny_teacher(), teacher)
    cmd = [sys.executable, "benchmarks/table1.py", "--budget-minutes", "0.05", "--device", "cpu",
           "--probe-seconds", "0.5", "--data-root", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"),
           "--out", str(tmp_path / "out"), "--set", f"teacher={teacher}", "batch_size=4", "student.width=4",
           "student.depth=6", "cmi.bank_size=8", "cmi.negatives=4", "cmi.head_dim=8", "generator.channels=8",
           "generator.lr_sizes=[8,8,8]", "validation.images=2", "validation.crop=24"]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    out = json.loads((tmp_path / "out" / "table1.json").read_text())
    assert {r["config"] for r in out["speed"]} >= {"fast-dfsr", "fast-paper", "paper (as published: fp32)"}
    assert all(r["steps_per_second"] > 0 for r in out["speed"])
    rows = out["table"]
    for row in ("fast-dfsr (ours, 0.05 min)", "fast-paper (ours, 0.05 min)", "teacher (measured)"):
        assert set(rows[row]) == {"Set5", "Set14"} and len(rows[row]["Set5"]) == 3, row
    assert set(out["psnr_minus_paper"]) == {"fast-dfsr", "fast-paper"}
    for name in ("fast-dfsr", "fast-paper"):
        assert (tmp_path / "runs" / name / "student.safetensors").is_file()
    # a second invocation reuses the finished runs instead of training again
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("finished earlier") == 2, again.stdout[-2000:]
