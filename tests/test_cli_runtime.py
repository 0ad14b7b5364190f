"""``edgesr bench`` and ``edgesr upscale`` as a device runs them: in a subprocess where
importing torch fails, with one-line errors and nothing overwritten on bad input."""

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.artifacts import bicubic_artifact, foreign_onnx
from tests.cli_helpers import assert_user_error, run_cli, run_python


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return bicubic_artifact(tmp_path_factory.mktemp("art") / "m.onnx")


def save(path, shape, seed=0):
    Image.fromarray((np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)).save(path)
    return path


def test_help_on_device_commands():
    for cmd in ("bench", "upscale", "demo"):
        r = run_cli(cmd, "--help", block_torch=True)
        assert r.returncode == 0 and "Usage" in r.stdout


def test_upscale_folder_without_torch(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    save(src / "a.png", (10, 12, 3))
    save(src / "b.png", (9, 7))
    r = run_cli("upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(model), block_torch=True)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out" / "a.png").size == (24, 20)
    assert Image.open(tmp_path / "out" / "b.png").mode == "L"
    before = (tmp_path / "out" / "a.png").read_bytes()
    again = run_cli("upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(model), block_torch=True)
    assert_user_error(again, "exists: pass --overwrite")
    assert (tmp_path / "out" / "a.png").read_bytes() == before


def test_upscale_folder_names_every_file_it_does_not_upscale(tmp_path, model):
    """9 inputs with a GIF among them once gave "wrote 8 images" and exit 0: GIFs are read (and
    written as PNG), and everything else in the folder is named in the summary."""
    src = tmp_path / "in"
    src.mkdir()
    save(src / "a.png", (10, 12, 3))
    Image.fromarray((np.random.default_rng(1).random((9, 7, 3)) * 255).astype(np.uint8)).save(src / "b.gif")
    (src / "notes.txt").write_text("not an image")
    (src / "raw").mkdir()
    r = run_cli("upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(model), block_torch=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert Image.open(tmp_path / "out" / "b.png").size == (14, 18)
    assert f"wrote 2 images to {tmp_path / 'out'}" in r.stdout
    assert "b.gif -> b.png" in r.stdout
    skipped = next(ln for ln in r.stdout.splitlines() if ln.startswith("skipped 2"))
    assert skipped.endswith(": notes.txt, raw/")


def test_upscale_folder_of_one_gif(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray((np.random.default_rng(1).random((9, 7)) * 255).astype(np.uint8)).save(src / "only.gif")
    r = run_cli("upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(model), block_torch=True)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out" / "only.png").size == (14, 18)
    (src / "only.gif").unlink()
    (src / "readme.md").write_text("x")
    r = run_cli("upscale", str(src), "-o", str(tmp_path / "out2"), "--model", str(model), block_torch=True)
    assert_user_error(r, "no images in folder")
    assert "(it holds readme.md)" in r.stderr


def test_upscale_keeps_the_quality_of_a_jpeg(tmp_path, model):
    from PIL import JpegImagePlugin

    src = tmp_path / "in"
    src.mkdir()
    pixels = (np.random.default_rng(2).random((16, 20, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(src / "hi.jpg", quality=96, subsampling=0)
    save(src / "p.png", (8, 8, 3))
    r = run_cli("upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(model), block_torch=True)
    assert r.returncode == 0, r.stderr
    with Image.open(src / "hi.jpg") as before, Image.open(tmp_path / "out" / "hi.jpg") as after:
        assert after.quantization == before.quantization and JpegImagePlugin.get_sampling(after) == 0
    r = run_cli("upscale", str(src / "p.png"), "-o", str(tmp_path / "p.jpg"), "--model", str(model), block_torch=True)
    assert r.returncode == 0, r.stderr
    Image.fromarray(pixels).save(tmp_path / "q95.jpg", quality=95)
    with Image.open(tmp_path / "p.jpg") as png_made, Image.open(tmp_path / "q95.jpg") as q95:
        assert png_made.quantization == q95.quantization  # not Pillow's default 75


def test_bench_records_the_threads_onnxruntime_gets_without_the_flag(tmp_path, model):
    from edgesr.threads import physical_cores

    r = run_cli("bench", str(model), "--sizes", "32", "--warmup", "0", "--runs", "1", "--json",
                str(tmp_path / "b.json"), block_torch=True)
    assert r.returncode == 0, r.stderr
    settings = json.loads((tmp_path / "b.json").read_text())["settings"]
    assert settings["threads"] == physical_cores() and "physical core" in settings["threads_from"]
    assert settings["providers"] == ["CPUExecutionProvider"] and settings["providers_asked"] == []


def _zero_width_png(path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 5, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("case, fragment", [
    ("not-an-image", "cannot read image"),
    ("truncated", "cannot read image"),
    ("zero-size", "cannot read image"),
    ("foreign-model", "not exported by edgesr"),
    ("output-is-input", "refusing to overwrite input"),
])
def test_upscale_bad_input(tmp_path, model, case, fragment):
    img = tmp_path / "x.png"
    out = tmp_path / "out.png"
    args_model = model
    if case == "not-an-image":
        img.write_text("hello")
    elif case == "truncated":
        save(img, (64, 64, 3))
        img.write_bytes(img.read_bytes()[:300])
    elif case == "zero-size":
        _zero_width_png(img)
    else:
        save(img, (8, 8, 3))
        if case == "foreign-model":
            args_model = foreign_onnx(tmp_path / "other.onnx")
        else:
            out = img
    original = img.read_bytes()
    r = run_cli("upscale", str(img), "-o", str(out), "--model", str(args_model), block_torch=True)
    assert_user_error(r, fragment)
    assert img.read_bytes() == original
    assert case == "output-is-input" or not out.exists()


def test_bench_without_torch_writes_table_json_plot(tmp_path, model):
    data = tmp_path / "set"
    data.mkdir()
    save(data / "a.png", (24, 30, 3))
    r = run_cli("bench", str(model), "--data", str(data), "--scales", "2", "3", "--sizes", "32", "48",
                "--warmup", "1", "--runs", "3", "--threads", "1", "--json", str(tmp_path / "b.json"),
                "--markdown", str(tmp_path / "b.md"), "--plot", str(tmp_path / "b.png"), block_torch=True)
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "b.json").read_text())
    rows = results["rows"]
    # what the sessions ran with, not the empty defaults of the command line
    assert results["settings"]["threads"] == 1 and results["settings"]["providers"] == ["CPUExecutionProvider"]
    assert rows[0]["peak_mb"] > 0 and rows[0]["providers"] == ["CPUExecutionProvider"]
    assert [row["kind"] for row in rows] == ["artifact", "bicubic"]  # no torch row without torch
    art = rows[0]
    assert [lat["size"] for lat in art["latency"]] == [32, 48]
    assert all(lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] for lat in art["latency"])
    assert [s["scale"] for s in art["scores"]] == [2, 3]
    assert rows[1]["scores"][0]["psnr"] == pytest.approx(art["scores"][0]["bicubic_psnr"])
    assert "| m.onnx |" in (tmp_path / "b.md").read_text()
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_foreign_artifact(tmp_path):
    r = run_cli("bench", str(foreign_onnx(tmp_path / "f.onnx")), "--sizes", "16", block_torch=True)
    assert_user_error(r, "not exported by edgesr")


def test_device_modules_never_import_torch(tmp_path, model):
    """Not just tolerant of a missing torch: with torch installed, they still leave it alone."""
    code = (
        "import sys, numpy as np\n"
        "from edgesr.runtime import open_upscaler\n"
        "from edgesr.runtime.photo import Photo, upscale_photo\n"
        "import edgesr.bench.rows, edgesr.bench.outputs, edgesr.cli\n"
        "from edgesr.demo.catalog import build_catalog\n"
        "from edgesr.demo.server import DemoServer\n"
        f"u = open_upscaler({str(model)!r})\n"
        "upscale_photo(u, Photo(np.zeros((9, 9, 3), np.uint8)), 2)\n"
        "DemoServer(build_catalog([u])).close()  # its warm-up runs the whole upload path\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["distill"], ["teacher", "train"], ["eval", "--data", "."], ["export"]])
def test_host_commands_without_torch_name_the_extra(command):
    """Where torch is not installed, a host command is one line naming the install command
    (tests/test_device_install.py checks the same on a real device install)."""
    r = run_cli(*command, block_torch=True)
    assert_user_error(r, f'edgesr {" ".join(c for c in command if not c.startswith("-") and c != ".")} needs torch')
    assert r.stderr.rstrip().endswith('pip install "edgesr[train]"')
