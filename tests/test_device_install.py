"""The device install, for real: ``pip install .`` with no extras in a venv of its own.

``$EDGESR_DEVICE_PYTHON`` names that venv's interpreter (``.ci/run`` builds ``.venv-device``
and sets it; these tests skip without it and never skip with it). The full install exports an
INT8 artifact; the artifact alone is copied to a fresh folder, and the device install's
``edgesr`` runs bench, upscale and the demo on it there, and must print exactly the full
install's numbers. Host commands on the device install end in one line naming the extra.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgesr.optional import EXTRAS
from tests.cli_helpers import ROOT, assert_user_error, run_cli

DEVICE_PYTHON = os.environ.get("EDGESR_DEVICE_PYTHON")
pytestmark = pytest.mark.skipif(not DEVICE_PYTHON, reason="EDGESR_DEVICE_PYTHON is not set: point it at a venv "
                                "with `pip install .` and no extras (.ci/run builds .venv-device)")
#: the demo's request path: POST the image file's bytes, get a PNG back
DEMO_UPSCALE_PATH = "/api/upscale"


def device(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """The device install's ``edgesr`` console script, run from ``cwd`` (never the checkout)."""
    edgesr = Path(DEVICE_PYTHON).parent / "edgesr"
    return subprocess.run([str(edgesr), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _image(path: Path, h: int, w: int, seed: int) -> Path:
    """A photo-like test image: smooth gradients, a few sharp-edged shapes, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([128 + 100 * np.sin(6 * xx + c + seed) * np.cos(4 * yy - c) for c in range(3)], -1)
    for _ in range(4):
        y0, x0 = rng.integers(0, h - 16), rng.integers(0, w - 16)
        img[y0:y0 + rng.integers(8, 16), x0:x0 + rng.integers(8, 16)] = rng.integers(0, 255, 3)
    img += rng.normal(0, 3, img.shape)
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """An INT8 (CPU form) ONNX of a tiny student, exported by the full install, then copied
    alone into an empty folder: all the device gets."""
    import torch

    from edgesr.models import VDSR
    from edgesr.models.formats import save_safetensors

    work = tmp_path_factory.mktemp("host")
    torch.manual_seed(0)
    save_safetensors(VDSR(8, depth=4), work / "student.safetensors", {"scales": "[2]"})
    calib = work / "calib"
    calib.mkdir()
    for i in range(3):
        _image(calib / f"c{i}.png", 64, 64, 10 + i)
    out = work / "student_int8.onnx"
    r = run_cli("export", "--model", str(work / "student.safetensors"), "--scale", "2", "--precision", "int8",
                "--calib", str(calib), "-o", str(out))
    assert r.returncode == 0, r.stderr
    fresh = tmp_path_factory.mktemp("device")
    shutil.copy2(out, fresh / out.name)
    shutil.rmtree(work)
    return fresh / out.name


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    _image(folder / "a.png", 72, 96, 1)
    _image(folder / "b.png", 61, 50, 2)
    return folder


def test_plain_install_ships_the_recipes(tmp_path):
    """`pip install .` (not editable) puts the top-level recipes/ into the package, byte for byte,
    where `--recipe NAME` finds them from any folder."""
    code = ("import json; from edgesr.config import shipped_recipes; d = shipped_recipes(); "
            "print(json.dumps([str(d), {p.name: p.read_text() for p in d.glob('*.yaml')}]))")
    r = subprocess.run([DEVICE_PYTHON, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    folder, shipped = json.loads(r.stdout)
    assert "site-packages" in Path(folder).parts, folder
    assert shipped == {p.name: p.read_text() for p in (ROOT / "recipes").glob("*.yaml")}


def test_device_install_has_no_host_packages(tmp_path):
    """torch, onnx and the rest of the train extra are not importable; edgesr comes from the venv."""
    code = ("import importlib.util as u, edgesr, json; "
            f"print(json.dumps([[m for m in {list(EXTRAS['train'])!r} if u.find_spec(m)], edgesr.__file__]))")
    r = subprocess.run([DEVICE_PYTHON, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    present, location = json.loads(r.stdout)
    assert present == []
    assert Path(location).parent != ROOT / "edgesr", f"edgesr imported from the checkout: {location}"
    assert "site-packages" in Path(location).parts, location


def test_bench_on_device_equals_full_install(artifact, photos):
    """Same artifact, same images: the device install's PSNR/SSIM are the full install's."""
    folder = artifact.parent
    opts = ["--data", str(photos), "--sizes", "64", "--warmup", "1", "--runs", "3", "--threads", "1"]
    r = device("bench", artifact.name, *opts, "--json", "device.json", cwd=folder)
    assert r.returncode == 0, r.stderr
    assert "student_int8.onnx" in r.stdout
    host = run_cli("bench", str(artifact), *opts, "--no-torch", "--json", str(folder / "host.json"))
    assert host.returncode == 0, host.stderr
    dev_rows, host_rows = (json.loads((folder / f).read_text())["rows"] for f in ("device.json", "host.json"))
    row = dev_rows[0]
    # everything bench knows about the model came from the artifact's own metadata
    assert (row["scale"], row["precision"], row["input_kind"], row["runtime"]) == (2, "int8", "lr", "onnxruntime/CPU")
    assert row["scores"] and all(s["psnr"] > 0 for s in row["scores"])
    for d, h in zip(dev_rows, host_rows, strict=True):
        assert [(s["set"], s["scale"], s["psnr"], s["ssim"]) for s in d["scores"]] == \
               [(s["set"], s["scale"], s["psnr"], s["ssim"]) for s in h["scores"]]


def test_upscale_on_device_equals_full_install(artifact, photos, tmp_path):
    r = device("upscale", str(photos), "-o", "out", "--model", artifact.name, cwd=artifact.parent)
    assert r.returncode == 0, r.stderr
    host = run_cli("upscale", str(photos), "-o", str(tmp_path / "host"), "--model", str(artifact))
    assert host.returncode == 0, host.stderr
    for name in ("a.png", "b.png"):
        dev = np.asarray(Image.open(artifact.parent / "out" / name))
        src = Image.open(photos / name)
        assert dev.shape[:2] == (2 * src.height, 2 * src.width)
        assert np.array_equal(dev, np.asarray(Image.open(tmp_path / "host" / name)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_request_on_device(artifact, photos):
    """``edgesr demo`` from the device install answers one upload with the upscaled PNG."""
    port = _free_port()
    edgesr = Path(DEVICE_PYTHON).parent / "edgesr"
    server = subprocess.Popen([str(edgesr), "demo", "--model", artifact.name, "--host", "127.0.0.1",
                               "--port", str(port)], cwd=artifact.parent, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=5) as page:
                    assert page.status == 200
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "demo did not start listening within 60 s"
                time.sleep(0.3)
        body = (photos / "a.png").read_bytes()
        request = urllib.request.Request(base + DEMO_UPSCALE_PATH, data=body, method="POST",
                                         headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            assert reply.status == 200
            out = Image.open(io.BytesIO(reply.read()))
        assert out.size == (2 * 96, 2 * 72)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("command", [
    ["distill", "--recipe", "quick"],
    ["teacher", "train", "--data", "."],
    ["eval", "--data", "."],
    ["export", "--model", "pytorch-vdsr"],
])
def test_host_commands_name_the_extra(command, tmp_path):
    r = device(*command, cwd=tmp_path)
    assert_user_error(r, 'pip install "edgesr[train]"')
    assert f"edgesr {' '.join(command[:2] if command[0] == 'teacher' else command[:1])} needs torch" in r.stderr


def test_plot_names_its_extra(artifact):
    r = device("bench", artifact.name, "--plot", "p.png", cwd=artifact.parent)
    assert_user_error(r, 'pip install "edgesr[plot]"')
