"""What the device install is: its distributions, size and install time; the Jetson
requirements resolved for JetPack 6; and an artifact benchmarked by every install.

    python benchmarks/device_install.py [--artifact ART.onnx --data Set5 Set14]

1. ``pip install <checkout>`` (no extras) into a fresh venv in a temporary folder: wall time,
   ``pip list``, size on disk (against this full install's), and whether torch/onnx import there.
2. ``pip install --dry-run`` of ``deploy/jetson/requirements.txt`` for CPython 3.10 on
   ``manylinux_2_35_aarch64`` (Ubuntu 22.04, JetPack 6's base), wheels only: what a Jetson gets.
3. deploy/jetson/README.md's install steps, on this x86 machine, with PyPI's ``onnxruntime``
   standing in for NVIDIA's ``onnxruntime-gpu``: a wheel built with ``pip wheel --no-deps``,
   ``requirements.txt``, then ``pip install --no-deps`` of the wheel.
4. With ``--artifact``: the artifact is copied alone to a fresh folder, and ``edgesr bench``
   runs on it from the device venv, the Jetson-steps venv and this (full) install.

Needs the package registry. Writes ``benchmarks/results/device_install.json``; install times
depend on the registry and the machine's load (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgesr.optional import EXTRAS

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def run(*cmd: str, cwd: Path | None = None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r.stdout


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def device_install(venv: Path) -> dict:
    t0 = time.perf_counter()
    run(sys.executable, "-m", "venv", str(venv))
    t1 = time.perf_counter()
    run(str(venv / "bin" / "pip"), "install", "-q", str(ROOT))
    seconds = time.perf_counter() - t1
    py = str(venv / "bin" / "python")
    dists = json.loads(run(str(venv / "bin" / "pip"), "list", "--format", "json"))
    importable = json.loads(run(py, "-c", "import importlib.util as u, json; "
                                          f"print(json.dumps([m for m in {EXTRAS['train']!r} if u.find_spec(m)]))"))
    return {"venv_seconds": round(t1 - t0, 1), "pip_install_seconds": round(seconds, 1),
            "distributions": {d["name"]: d["version"] for d in dists},
            "venv_mb": round(du_mb(venv), 1), "full_install_venv_mb": round(du_mb(Path(sys.prefix)), 1),
            "host_modules_importable": importable}


def jetson_resolution(work: Path) -> dict:
    """What pip would install on JetPack 6 from the requirements file (nothing is installed)."""
    report = work / "jetson-report.json"
    # pip takes each --platform literally: list every manylinux tag glibc 2.35 can run
    tags = [f"manylinux_2_{v}_aarch64" for v in range(17, 36)] + ["manylinux2014_aarch64", "linux_aarch64"]
    run(sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--only-binary=:all:",
        *(a for tag in tags for a in ("--platform", tag)), "--python-version", "3.10", "--implementation", "cp",
        "--target", str(work / "jetson-target"), "--report", str(report),
        "-r", str(ROOT / "deploy" / "jetson" / "requirements.txt"))
    items = json.loads(report.read_text())["install"]
    return {"platform": "manylinux_2_35_aarch64, CPython 3.10",
            "wheels": sorted(Path(i["download_info"]["url"]).name for i in items)}


def jetson_steps(venv: Path, work: Path) -> dict:
    """deploy/jetson/README.md's step 2 with PyPI's onnxruntime for NVIDIA's onnxruntime-gpu."""
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(ROOT))
    wheel = next((work / "dist").glob("edgesr-*.whl"))
    pip = str(venv / "bin" / "pip")
    run(sys.executable, "-m", "venv", "--system-site-packages", str(venv))
    run(pip, "install", "-q", "onnxruntime")
    run(pip, "install", "-q", "-r", str(ROOT / "deploy" / "jetson" / "requirements.txt"))
    run(pip, "install", "-q", "--no-deps", str(wheel))
    dists = json.loads(run(pip, "list", "--format", "json", "--local"))
    return {"wheel": wheel.name, "distributions": {d["name"]: d["version"] for d in dists}}


def bench_all(installs: dict[str, Path], artifact: Path, data: list[str], work: Path) -> dict:
    """``edgesr bench`` of the artifact, copied alone to a fresh folder, with each install's script."""
    fresh = work / "device"
    fresh.mkdir()
    shutil.copy2(artifact, fresh / artifact.name)
    opts = ["--data", *[str(Path(d).resolve()) for d in data], "--sizes", "256", "--runs", "5", "--threads", "1",
            "--no-torch"]
    scores = {}
    for name, edgesr in installs.items():
        run(str(edgesr), "bench", artifact.name, *opts, "--json", f"{name}.json", cwd=fresh)
        row = json.loads((fresh / f"{name}.json").read_text())["rows"][0]
        scores[name] = {f"{s['set']} x{s['scale']}": [s["psnr"], s["ssim"]] for s in row["scores"]}
    meta = {k: row[k] for k in ("source", "precision", "input_kind", "scale", "runtime")}
    return {"artifact": artifact.name, "meta_read_by_bench": meta, "psnr_ssim": scores,
            "identical": all(v == scores["full"] for v in scores.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifact", type=Path, help="an exported .onnx to bench with both installs")
    ap.add_argument("--data", nargs="*", default=[], help="benchmark folders for --artifact")
    args = ap.parse_args()
    result = {"load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="edgesr-device-") as tmp:
        work = Path(tmp)
        result["device_install"] = device_install(work / "venv")
        print(json.dumps(result["device_install"], indent=1))
        result["jetson_requirements"] = jetson_resolution(work)
        print(json.dumps(result["jetson_requirements"], indent=1))
        result["jetson_steps_on_x86"] = jetson_steps(work / "jetson-venv", work)
        print(json.dumps(result["jetson_steps_on_x86"], indent=1))
        if args.artifact:
            installs = {"device": work / "venv" / "bin" / "edgesr",
                        "jetson_steps": work / "jetson-venv" / "bin" / "edgesr",
                        "full": Path(sys.prefix) / "bin" / "edgesr"}
            result["bench"] = bench_all(installs, args.artifact, args.data, work)
            print(json.dumps(result["bench"], indent=1))
    result["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "device_install.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'device_install.json'}")


if __name__ == "__main__":
    main()
