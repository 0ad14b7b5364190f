"""The README's main job (`edgesr distill --recipe quick`) on a fresh machine: no ../shared
beside the working folder, an empty weights cache and no network. Only the step count is cut."""

import json
import os
import subprocess
import sys

from safetensors import safe_open

from edgesr.models.zoo import Teachers, resolve, sha256_of


def test_quick_recipe_runs_offline_without_shared_data(tmp_path):
    work = tmp_path / "fresh" / "clone"
    work.mkdir(parents=True)
    env = {**os.environ, "EDGESR_HOME": str(tmp_path / "empty_cache"), "COLUMNS": "160",
           # any download attempt fails at once instead of reaching a server
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    r = subprocess.run([sys.executable, "-m", "edgesr", "distill", "--recipe", "quick", "--device", "cpu",
                        "--set", "progressive.steps=[2]", "batch_size=2", "checkpoint_every=2",
                        "samples.pool_images=2", "samples.pool_size=48"],  # a tiny pool: the refit stays quick
                       cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "not found" in r.stdout  # validation and benchmark folders are missing: said, then skipped
    run = work / "runs" / "distill" / "quick"
    assert json.loads((run / "results.json").read_text())["steps"] == 2
    with safe_open(str(run / "student.safetensors"), "pt") as f:
        meta = f.metadata()
    default = Teachers.DEFAULT.value.name
    assert meta["teacher"] == default and meta["teacher_sha256"] == sha256_of(resolve(default))
    assert (run / "generators.safetensors").is_file()
    assert not (tmp_path / "empty_cache").exists() or not any((tmp_path / "empty_cache").iterdir())
