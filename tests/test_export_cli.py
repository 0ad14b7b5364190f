"""``edgesr export`` end to end: outputs, the torch-free device side, and one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from edgesr.distill.generator import Generator, save_generators
from edgesr.models import VDSR
from edgesr.models.formats import save_safetensors
from tests.cli_helpers import assert_user_error, run_cli, run_python


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A stand-in distill run folder: a tiny student and random generators, as the contract says."""
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_safetensors(VDSR(8, depth=4), run / "student.safetensors",
                     {"scales": "[2, 3]", "measured_psnr": json.dumps({"Set5": {"2": 30.5}})})
    save_generators({2: Generator(24, z_dim=16, channels=8), 3: Generator(16, z_dim=16, channels=8)}, run)
    return run


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """fp32, fp16 and CPU-int8 ONNX files and a TensorRT INT8 bundle of the tiny student."""
    from edgesr.export.pipeline import ExportRequest, export_model

    out = tmp_path_factory.mktemp("out")
    student = str(run_dir / "student.safetensors")
    export_model(ExportRequest(student, "onnx", 2, out=out / "fp32.onnx"))  # in-process: saves a torch import
    export_model(ExportRequest(student, "onnx", 2, "fp16", "bicubic", out=out / "fp16.onnx"))
    for args in (["--precision", "int8", "-o", str(out / "int8.onnx")],
                 ["--precision", "int8", "--target", "tensorrt", "-o", str(out / "trt")]):
        r = run_cli("export", "--model", student, "--scale", "2", *args)
        assert r.returncode == 0, r.stderr
    return out


def test_export_outputs_and_metadata(exported, run_dir):
    from edgesr.export.onnx_export import read_metadata

    meta = read_metadata(exported / "int8.onnx")
    assert (meta.scale, meta.input_kind, meta.precision) == (2, "lr", "int8")
    assert meta.source_psnr == {"Set5": {"2": 30.5}} and len(meta.source_sha256) == 64
    assert meta.extra["calibration"]["kind"] == "generators"  # data-free by default, from the run folder
    costs = meta.extra["layer_sensitivity_mse"]  # default auto (CPU form: 2): the two costliest convs stay float
    assert meta.extra["int8_form"] == "cpu" and len(costs) == 4
    assert meta.extra["float_layers"] == sorted(np.argsort(costs)[::-1][:2].tolist())
    bundle = sorted(p.name for p in (exported / "trt").iterdir())
    assert bundle == ["BENCH.md", "README.md", "build_engine.py", "build_engine.sh", "model.meta.json",
                      "model.onnx", "requirements.txt"]
    assert json.loads((exported / "trt" / "model.meta.json").read_text())["edgesr.extra"].count('"tensorrt"') == 1
    # --sizes is the output's side: 512, not the 256x256 LR input that gives it at x2
    bench = [ln for ln in (exported / "trt" / "BENCH.md").read_text().splitlines() if ln.startswith("edgesr bench")]
    assert len(bench) == 1 and bench[0].endswith("--scales 2 --sizes 512")


def test_device_side_runs_without_torch(exported):
    """Metadata and models load and run with only numpy and onnxruntime (torch import blocked)."""
    code = f"""
import json, numpy as np, onnxruntime as ort
from edgesr.artifact import ArtifactMeta
out = {str(exported)!r}
for name in ('fp32.onnx', 'fp16.onnx', 'int8.onnx', 'trt/model.onnx'):
    s = ort.InferenceSession(out + '/' + name, providers=['CPUExecutionProvider'])
    meta = ArtifactMeta.from_props(s.get_modelmeta().custom_metadata_map, name)
    x = np.random.default_rng(0).random((1, 1, 10, 12), dtype=np.float32)
    y = s.run(None, {{'input': x}})[0]
    side = meta.scale if meta.input_kind == 'lr' else 1
    assert y.shape == (1, 1, 10 * side, 12 * side) and np.isfinite(y).all(), name
ArtifactMeta.from_props(json.load(open(out + '/trt/model.meta.json')), 'bundle')
assert 'torch' not in sys.modules
print('ok')
"""
    r = run_python(code, block_torch=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def _assert_nothing_written(folder, before: set) -> None:
    assert set(p.name for p in folder.iterdir()) == before


def test_unsupported_target(tmp_path):
    r = run_cli("export", "--target", "tflite", "-o", str(tmp_path / "m"))
    assert_user_error(r, "unsupported target 'tflite'")
    _assert_nothing_written(tmp_path, set())


def test_scale_not_in_model_metadata(run_dir, tmp_path):
    r = run_cli("export", "--model", str(run_dir / "student.safetensors"), "--scale", "4",
                "-o", str(tmp_path / "m.onnx"))
    assert_user_error(r, "was trained for x2, x3, not x4")
    _assert_nothing_written(tmp_path, set())


def test_corrupt_weights(tmp_path):
    good = tmp_path / "m.safetensors"
    save_safetensors(VDSR(4, depth=3), good)
    (tmp_path / "bad.safetensors").write_bytes(good.read_bytes()[:100])
    r = run_cli("export", "--model", str(tmp_path / "bad.safetensors"), "-o", str(tmp_path / "m.onnx"))
    assert_user_error(r, "cannot read weights")
    _assert_nothing_written(tmp_path, {"m.safetensors", "bad.safetensors"})


def test_calibration_folder_without_images(run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    r = run_cli("export", "--model", str(run_dir / "student.safetensors"), "--precision", "int8",
                "--calib", str(tmp_path / "empty"), "--target", "tensorrt", "-o", str(tmp_path / "b"))
    assert_user_error(r, "has no images")
    _assert_nothing_written(tmp_path, {"empty"})


@pytest.mark.integration
def test_teacher_onnx_matches_torch_on_set5(shared_data):
    """Acceptance 1 on real images: both input kinds within 1e-4 of torch, PSNR within 0.001 dB."""
    import onnxruntime as ort

    from edgesr.data.benchmark import degrade, open_set
    from edgesr.evaluate import score_pairs
    from edgesr.export.deploy_net import DeployNet
    from edgesr.export.onnx_export import torch_to_onnx
    from edgesr.export.source import load_source
    from edgesr.models.predict import torch_predictor

    net = load_source("pytorch-vdsr").net
    pairs = [p for p in open_set(shared_data / "Set5").pairs(3) if p.name in ("bird", "butterfly")]
    predict = torch_predictor(net)
    for kind in ("bicubic", "lr"):
        sess = ort.InferenceSession(torch_to_onnx(DeployNet(net, 3, kind)).SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        for pair in pairs:
            bic = (pair.bicubic_y / 255).astype(np.float32)
            x = degrade(pair.gt_y / 255, 3)[0].astype(np.float32) if kind == "lr" else bic
            y = sess.run(None, {"input": x[None, None]})[0][0, 0]
            ref = predict(bic, 3)
            assert np.abs(y - ref).max() <= 1e-4, (kind, pair.name)
            p_onnx = score_pairs(lambda *_, y=y: y, [pair], "Set5", False).psnr
            p_torch = score_pairs(lambda *_, ref=ref: ref, [pair], "Set5", False).psnr
            assert abs(p_onnx - p_torch) <= 1e-3


@pytest.mark.parametrize("spec, fragment", [("auto:two", "--float-layers takes auto"),
                                            ("0,9", "--float-layers 9: the model has 4 convs")])
def test_bad_float_layers(run_dir, tmp_path, spec, fragment):
    r = run_cli("export", "--model", str(run_dir / "student.safetensors"), "--precision", "int8",
                "--float-layers", spec, "-o", str(tmp_path / "m.onnx"))
    assert_user_error(r, fragment)
    _assert_nothing_written(tmp_path, set())


def test_int8_with_qad_runs_the_whole_path(run_dir, tmp_path):
    """Sweep, QAD with the calibrated ranges, re-calibration and quantization, in one export."""
    from edgesr.export.pipeline import ExportRequest, export_model

    res = export_model(ExportRequest(str(run_dir / "student.safetensors"), "onnx", 2, "int8",
                                     float_layers="auto:1", qad_steps=3, out=tmp_path / "q.onnx"))
    assert res.meta.extra["qad_steps"] == 3 and len(res.meta.extra["float_layers"]) == 1
    assert (tmp_path / "q.onnx").is_file()


def test_export_without_onnxsim(run_dir, exported, tmp_path):
    """ARM hosts have no onnxsim wheel: the export still writes a checker-clean ONNX, says in one
    line that it skipped simplification, and computes what the simplified export computes."""
    import onnx
    import onnxruntime as ort

    student = str(run_dir / "student.safetensors")
    for name, args in (("fp32.onnx", []), ("int8.onnx", ["--precision", "int8"])):
        r = run_cli("export", "--model", student, "--scale", "2", *args, "-o", str(tmp_path / name), block=("onnxsim",))
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        notes = [ln for ln in r.stdout.splitlines() if "simplification" in ln]
        assert len(notes) == 1 and "skipped simplification" in notes[0], r.stdout
        onnx.checker.check_model(onnx.load(str(tmp_path / name)), full_check=True)
        x = np.random.default_rng(0).random((1, 1, 20, 24), dtype=np.float32)
        outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
                for p in (tmp_path / name, exported / name)]
        assert outs[0].shape == (1, 1, 40, 48)
        # fp32: float rounding; int8: the same calibration and quantization, so the same grid
        assert np.abs(outs[0] - outs[1]).max() <= (1e-5 if name == "fp32.onnx" else 1e-3), name


@pytest.mark.skipif(sys.platform == "darwin", reason="the note is for machines that cannot run CoreML")
def test_coreml_export_says_it_cannot_run_here(run_dir, tmp_path):
    pytest.importorskip("coremltools")
    out = tmp_path / "m.mlpackage"
    r = run_cli("export", "--model", str(run_dir / "student.safetensors"), "--target", "coreml", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert out.is_dir()
    assert r.stdout.strip().splitlines()[-1].startswith("note: a CoreML package runs on macOS and iOS only")


def test_coreml_without_coremltools_names_the_extra(tmp_path):
    r = run_cli("export", "--target", "coreml", "-o", str(tmp_path / "m.mlpackage"), block=("coremltools",))
    assert_user_error(r, '--target coreml needs coremltools (not installed here): pip install "edgesr[coreml]"')
    _assert_nothing_written(tmp_path, set())


def test_existing_output_needs_overwrite(run_dir, exported, tmp_path):
    """One rule for every command that writes: an existing output is refused before any work."""
    student = str(run_dir / "student.safetensors")
    target = tmp_path / "m.onnx"
    target.write_bytes(b"keep me")
    assert_user_error(run_cli("export", "--model", student, "--scale", "2", "-o", str(target)),
                      f"{target} exists: pass --overwrite to replace it")
    assert target.read_bytes() == b"keep me"
    r = run_cli("export", "--model", student, "--scale", "2", "-o", str(target), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert target.read_bytes()[:4] != b"keep"
    # the default name is refused too, in the folder the command runs in
    r = run_cli("export", "--model", student, "--scale", "2", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "student_x2_lr_fp32.onnx").is_file(), r.stderr
    assert_user_error(run_cli("export", "--model", student, "--scale", "2", cwd=tmp_path), "exists")
    # bench's and eval's reports follow the same rule
    report = tmp_path / "report.json"
    report.write_text("{}")
    bench = ["bench", str(target), "--sizes", "16", "--warmup", "0", "--runs", "1", "--json", str(report)]
    assert_user_error(run_cli(*bench, block_torch=True), "report.json exists: pass --overwrite")
    assert run_cli(*bench, "--overwrite", block_torch=True).returncode == 0
    assert_user_error(run_cli("eval", "--model", student, "--data", str(tmp_path), "--json", str(report)),
                      "report.json exists: pass --overwrite")


def test_bundle_folder_gets_the_umask(run_dir, tmp_path):
    import os
    import stat

    from edgesr.export.pipeline import ExportRequest, export_model

    old = os.umask(0o022)
    try:
        res = export_model(ExportRequest(str(run_dir / "student.safetensors"), "tensorrt", 2, out=tmp_path / "b"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(res.path.stat().st_mode) == 0o755
    assert stat.S_IMODE((res.path / "model.onnx").stat().st_mode) == 0o644


def test_bench_takes_a_tensorrt_bundle_folder(exported, tmp_path):
    r = run_cli("bench", str(exported / "trt"), "--sizes", "16", "--warmup", "0", "--runs", "1",
                "--json", str(tmp_path / "b.json"), block_torch=True)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows[0]["name"] == "trt/model.onnx" and rows[0]["runtime"].startswith("onnxruntime")
    assert_user_error(run_cli("bench", str(tmp_path), "--sizes", "16", block_torch=True),
                      "not a TensorRT bundle")


def test_bench_torch_row_is_opt_in_and_found_from_any_folder(run_dir, exported, tmp_path):
    """The artifact records its source's absolute path and checksum; --torch loads it from another
    folder, and refuses a file that changed since the export."""
    from edgesr.export.onnx_export import read_metadata

    meta = read_metadata(exported / "fp32.onnx")
    assert meta.source_path == str((run_dir / "student.safetensors").resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["bench", str(exported / "fp32.onnx"), "--sizes", "16", "--warmup", "0", "--runs", "1"]
    r = run_cli(*args, "--json", "plain.json", cwd=elsewhere)
    assert r.returncode == 0 and "add --torch" in r.stdout, r.stderr
    assert [row["kind"] for row in json.loads((elsewhere / "plain.json").read_text())["rows"]] == ["artifact",
                                                                                                  "bicubic"]
    r = run_cli(*args, "--torch", "--json", "torch.json", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    rows = json.loads((elsewhere / "torch.json").read_text())["rows"]
    assert [row["kind"] for row in rows] == ["artifact", "bicubic", "torch"]
    assert rows[2]["name"] == "student.safetensors (torch)"


def test_bench_torch_row_refuses_a_changed_source(tmp_path):
    import shutil

    from edgesr.export.pipeline import ExportRequest, export_model

    src = tmp_path / "student.safetensors"
    torch.manual_seed(1)
    save_safetensors(VDSR(8, depth=4), src, {"scales": "[2]"})
    export_model(ExportRequest(str(src), "onnx", 2, out=tmp_path / "m.onnx"))
    shutil.copy(src, tmp_path / "old.safetensors")
    save_safetensors(VDSR(8, depth=4), src, {"scales": "[2]"})  # other random weights, same path
    r = run_cli("bench", str(tmp_path / "m.onnx"), "--sizes", "16", "--warmup", "0", "--runs", "1", "--torch",
                "--json", str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [row["kind"] for row in rows] == ["artifact", "bicubic"]
    assert "sha256 differs" in " ".join(rows[0]["notes"])
