"""The README's main job (`edgesr distill --recipe quick`) on a fresh machine: no ../shared
beside the checkout, an empty weights cache and no network. Cut: the step count, and the sample
pool to 8 images (its preparation, the teacher on the pool and the student's refit, takes 35 s
at 8 and 4.5 min at the recipe's 48 on one thread of a busy 2-core machine)."""

import json
import os
import shutil
import subprocess
import sys

from safetensors import safe_open

from edgesr.models.zoo import Teachers, resolve, sha256_of
from tests.cli_helpers import ROOT


def test_quick_recipe_runs_offline_without_shared_data(tmp_path):
    work = tmp_path / "fresh" / "clone"
    work.mkdir(parents=True)
    # the checkout's recipe in a checkout of its own: its data paths (relative to the recipe's
    # file, ../../shared/data/...) name folders this machine does not have
    (work / "recipes").mkdir()
    shutil.copy(ROOT / "recipes" / "quick.yaml", work / "recipes")
    env = {**os.environ, "EDGESR_HOME": str(tmp_path / "empty_cache"), "COLUMNS": "160",
           # any download attempt fails at once instead of reaching a server
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    r = subprocess.run([sys.executable, "-m", "edgesr", "distill", "--recipe", "quick", "--device", "cpu",
                        "--set", "progressive.steps=[2]", "batch_size=2", "checkpoint_every=2",
                        "samples.pool_images=2", "samples.pool_size=48"],  # a tiny pool: the refit stays quick
                       cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # validation and benchmark folders are missing: said (with the folder the recipe names), then skipped
    missing = str(tmp_path / "fresh" / "shared" / "data")
    assert f"validation folder {missing}/train291 not found" in r.stdout, r.stdout
    assert f"evaluation set {missing}/Set5 not found" in r.stdout
    # stdout is a pipe, not a terminal: plain progress lines, then the wall time and what to run next
    assert "distill: step 2/2 (100%)" in r.stdout and "steps/s" in r.stdout, r.stdout
    # the thread line comes once the recipe is valid: after the run's own first line
    lines = r.stdout.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("distill quick -> "))
    assert "CPU thread" in lines[first + 1] and not any("CPU thread" in ln for ln in lines[:first]), r.stdout
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("done in ") and "-m edgesr export --model runs/distill/quick --scale 2" in last
    run = work / "runs" / "distill" / "quick"
    assert json.loads((run / "results.json").read_text())["steps"] == 2
    with safe_open(str(run / "student.safetensors"), "pt") as f:
        meta = f.metadata()
    default = Teachers.DEFAULT.value.name
    assert meta["teacher"] == default and meta["teacher_sha256"] == sha256_of(resolve(default))
    assert (run / "generators.safetensors").is_file()
    assert not (tmp_path / "empty_cache").exists() or not any((tmp_path / "empty_cache").iterdir())
