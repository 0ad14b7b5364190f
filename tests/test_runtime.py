"""The device runtime: backend choice, metadata contract, evaluation parity with torch, tiling."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from edgesr.data.benchmark import open_set
from edgesr.errors import EdgesrError
from edgesr.evaluate import evaluate
from edgesr.models.predict import torch_predictor
from edgesr.runtime import open_upscaler
from edgesr.runtime.tiling import plan_tiles, upscale_tiled
from tests.artifacts import NearestThenNet, bicubic_artifact, foreign_onnx, lr_artifact, tiny_vdsr


@pytest.fixture(scope="module")
def bic_path(tmp_path_factory):
    return bicubic_artifact(tmp_path_factory.mktemp("art") / "bic.onnx")


@pytest.fixture(scope="module")
def lr_path(tmp_path_factory):
    return lr_artifact(tmp_path_factory.mktemp("art") / "lr.onnx", scale=3)


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    for i, shape in enumerate([(48, 42, 3), (36, 60)]):
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return open_set(folder)


def test_onnx_matches_torch_and_reads_metadata(bic_path):
    u = open_upscaler(bic_path, threads=1)
    assert (u.backend, u.meta.input_kind, u.meta.scale, u.meta.precision) == ("onnxruntime", "bicubic", 2, "fp32")
    assert u.session.get_session_options().intra_op_num_threads == 1
    x = np.random.default_rng(0).random((23, 31)).astype(np.float32)
    ref = tiny_vdsr()(torch.from_numpy(x)[None, None])[0, 0].detach().numpy()
    np.testing.assert_allclose(u.infer(x), ref, atol=1e-5)


def test_bench_psnr_equals_torch_evaluation(bic_path, lr_path, image_set):
    """Acceptance 1 on a small case: the runtime's PSNR is torch's within 0.001 dB, both kinds."""
    u = open_upscaler(bic_path)
    ours = evaluate(u.predictor(), [image_set], [2, 3], feed="bicubic")
    ref = evaluate(torch_predictor(tiny_vdsr()), [image_set], [2, 3])
    lr = open_upscaler(lr_path)
    ours += evaluate(lr.predictor(), [image_set], [3], feed="lr")
    lr_net = NearestThenNet(tiny_vdsr(), 3).eval()
    ref += evaluate(torch_predictor(lr_net), [image_set], [3], feed="lr")
    for a, b in zip(ours, ref):
        assert abs(a.psnr - b.psnr) < 1e-3 and abs(a.ssim - b.ssim) < 1e-5, (a, b)


def test_lr_kind_upscales_by_its_scale_only(lr_path):
    u = open_upscaler(lr_path)
    assert u.upscale_y(np.full((5, 7), 0.5), 3).shape == (15, 21)
    with pytest.raises(EdgesrError, match="x3 only"):
        u.upscale_y(np.full((5, 7), 0.5), 2)


@pytest.mark.parametrize("make, fragment", [
    (lambda p: foreign_onnx(p / "other.onnx"), "not exported by edgesr"),
    (lambda p: (p / "junk.onnx").write_bytes(b"not a protobuf at all") and p / "junk.onnx", "cannot load"),
    (lambda p: (p / "m.tflite").write_bytes(b"x") and p / "m.tflite", "unknown model type"),
    (lambda p: (p / "m.engine").write_bytes(b"x") and p / "m.engine", "no metadata file m.engine.json"),
    (lambda p: (p / "m.mlpackage").mkdir() or p / "m.mlpackage", "CoreML runs only on macOS"),
])
def test_artifact_errors_are_one_line(tmp_path, make, fragment):
    with pytest.raises(EdgesrError, match=fragment) as info:
        open_upscaler(make(tmp_path))
    assert "\n" not in str(info.value)


def test_tensorrt_engine_without_tensorrt_says_so(tmp_path, bic_path):
    import onnxruntime as ort

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"serialized engine")
    props = ort.InferenceSession(str(bic_path)).get_modelmeta().custom_metadata_map
    (tmp_path / "m.engine.json").write_text(json.dumps(props))
    with pytest.raises(EdgesrError, match=r'needs tensorrt \(not installed here\): pip install "edgesr\[tensorrt\]"'):
        open_upscaler(engine)


def test_providers_are_checked(bic_path):
    assert open_upscaler(bic_path, providers=["cpu"]).device == "CPU"
    with pytest.raises(EdgesrError, match="CUDAExecutionProvider"):
        open_upscaler(bic_path, providers=["cuda"])


def test_tiles_cover_every_pixel_once():
    cover = np.zeros((37, 50), int)
    for t in plan_tiles(37, 50, 8, 3):
        cover[t.core] += 1
        assert t.padded[0].start <= t.core[0].start and t.padded[1].stop >= t.core[1].stop
    assert (cover == 1).all()


@pytest.mark.parametrize("kind", ["bicubic", "lr"])
def test_tiled_equals_whole(tmp_path, kind):
    """Within 1/255 everywhere with the default margin; without a margin the seams show."""
    net = tiny_vdsr(seed=3, width=4, depth=8)
    make = bicubic_artifact if kind == "bicubic" else lr_artifact
    u = open_upscaler(make(tmp_path / f"{kind}.onnx", net=net, scale=2))
    lr = np.random.default_rng(2).random((70, 90, 1))
    fn = lambda region: u.upscale_y(region[..., 0], 2)[..., None]  # noqa: E731
    whole = upscale_tiled(lr, fn, 2, np.empty((140, 180, 1)), tile=10_000)
    tiled = upscale_tiled(lr, fn, 2, np.empty((140, 180, 1)), tile=40)
    assert np.abs(tiled - whole).max() < 1 / 255
    seams = upscale_tiled(lr, fn, 2, np.empty((140, 180, 1)), tile=40, margin=0)
    assert np.abs(seams - whole).max() > 1 / 255
