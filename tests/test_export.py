"""Export: in-graph bicubic, ONNX structure and metadata, FP16, INT8 forms, QAD, CoreML spec."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from edgesr.artifact import ArtifactMeta
from edgesr.errors import EdgesrError
from edgesr.export.calibration import find_calibration, lr_samples, model_inputs
from edgesr.export.clipping import mse_range, mse_threshold
from edgesr.export.deploy_net import DeployNet
from edgesr.export.int8 import FloatLayers
from edgesr.export.onnx_export import OPSET, read_metadata, save_onnx, set_metadata, torch_to_onnx
from edgesr.export.qad import distill_quantized, fake_quantized
from edgesr.export.quantize import calibrate, conv_input_ranges, conv_layers, most_sensitive, quantize, sensitivity
from edgesr.models import VDSR
from edgesr.ops import imresize
from edgesr.ops.bicubic_graph import BicubicUpscale, phase_filters
from edgesr.ops.resize_torch import imresize as torch_imresize


def tiny(width: int = 8, depth: int = 5, seed: int = 0) -> VDSR:
    torch.manual_seed(seed)
    return VDSR(width, depth).eval()


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x.astype(np.float32)})[0]


@pytest.fixture(scope="module")
def lr_onnx() -> onnx.ModelProto:
    return torch_to_onnx(DeployNet(tiny(), 3, "lr"))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_phase_filters_are_matlab_weights(scale):
    filters, before, after = phase_filters(scale)
    assert filters.shape == (scale, before + after + 1)
    np.testing.assert_allclose(filters.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_module_equals_matlab_everywhere(scale):
    rng = np.random.default_rng(scale)
    for shape in [(2, 3), (7, 5), (16, 23)]:
        x = rng.random(shape)
        out = BicubicUpscale(scale)(torch.tensor(x, dtype=torch.float32)[None, None])[0, 0].numpy()
        assert out.shape == imresize(x, scale).shape
        assert np.abs(out - imresize(x, scale)).max() < 1e-6


def test_in_graph_bicubic_onnx_equals_matlab():
    """With a zero residual the ``lr`` graph is the bicubic alone: compare ONNX with imresize."""
    net = tiny()
    torch.nn.init.zeros_(net.tail.weight)
    model = torch_to_onnx(DeployNet(net, 4, "lr"))
    x = np.random.default_rng(0).random((19, 26))
    out = run(model, x[None, None])[0, 0]
    assert np.abs(out - imresize(x, 4)).max() < 1e-5
    assert {n.op_type for n in model.graph.node} <= {"Slice", "Concat", "Conv", "DepthToSpace", "Relu", "Add"}


def test_onnx_structure_dynamic_and_metadata(lr_onnx, tmp_path):
    net = tiny()
    assert lr_onnx.opset_import[0].version == OPSET
    assert [i.name for i in lr_onnx.graph.input] == ["input"] and [o.name for o in lr_onnx.graph.output] == ["output"]
    dims = lr_onnx.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[:2]] == [1, 1] and all(d.dim_param for d in dims[2:])
    meta = ArtifactMeta(3, "lr", "fp32", model="tiny", source_sha256="ab" * 32, source_psnr={"Set5": {"3": 30.1}})
    path = save_onnx(set_metadata(lr_onnx, meta), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == [path]  # one file, no external data
    assert read_metadata(path) == meta
    for h, w in [(5, 9), (20, 11)]:
        x = np.random.default_rng(h).random((1, 1, h, w), dtype=np.float32)
        ref = DeployNet(net, 3, "lr")(torch.from_numpy(x)).detach().numpy()
        assert np.abs(run(lr_onnx, x) - ref).max() < 1e-5


def test_fp16_graph_keeps_float32_io_and_skip():
    net = tiny()
    model = torch_to_onnx(DeployNet(net, 2, "bicubic", half=True))
    io_types = {v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)}
    assert io_types == {onnx.TensorProto.FLOAT}
    conv_w = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    assert {t.data_type for t in model.graph.initializer if t.name in conv_w} == {onnx.TensorProto.FLOAT16}
    x = np.random.default_rng(1).random((1, 1, 12, 12), dtype=np.float32)
    ref = net(torch.from_numpy(x)).detach().numpy()
    assert np.abs(run(model, x) - ref).max() < 2e-3


def _producer(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


@pytest.fixture(scope="module")
def ranges(lr_onnx, tmp_path_factory):
    x = np.random.default_rng(0).random((16, 1, 16, 16), dtype=np.float32)
    return calibrate(lr_onnx, x, "minmax", tmp_path_factory.mktemp("calib") / "r.json")


def test_int8_tensorrt_form_obeys_explicit_quantization_rules(lr_onnx, ranges):
    layers = conv_layers(lr_onnx)
    assert len(layers.net) == 5 and len(layers.pre) == 1
    q = quantize(lr_onnx, ranges, "tensorrt", [layers.net[0], layers.net[-1]])
    onnx.checker.check_model(q)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    prod = _producer(q)
    for node in q.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = inits[node.input[2]]
            assert zp.dtype == np.int8 and not zp.any(), node.name
    convs = {n.name: n for n in q.graph.node if n.op_type == "Conv"}
    for name in layers.net[1:-1]:
        conv = convs[name]
        dq_x, dq_w = (prod.get(i) for i in conv.input[:2])
        assert dq_x is not None and dq_x.op_type == "DequantizeLinear", name
        assert dq_w is not None and dq_w.op_type == "DequantizeLinear", name
        assert inits[dq_x.input[1]].ndim == 0  # per-tensor activations
        w_scale = inits[dq_w.input[1]]
        axis = next((a.i for a in dq_w.attribute if a.name == "axis"), 1)
        assert axis == 0 and w_scale.shape == (inits[dq_w.input[0]].shape[0],)  # per output channel
        assert inits[dq_w.input[0]].dtype == np.int8
    for name in [*layers.pre, layers.net[0], layers.net[-1]]:
        assert all(prod.get(i) is None or prod[i].op_type != "DequantizeLinear" for i in convs[name].input[:2])


def test_int8_cpu_form_uses_uint8_activations_and_tracks_fp32(lr_onnx, ranges):
    layers = conv_layers(lr_onnx)
    q = quantize(lr_onnx, ranges, "cpu", [layers.net[0], layers.net[-1]])
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    act_zp = [inits[n.input[2]] for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert act_zp and all(z.dtype == np.uint8 for z in act_zp)
    x = np.random.default_rng(5).random((1, 1, 16, 16), dtype=np.float32)
    err = np.abs(run(q, x) - run(lr_onnx, x)).max()
    assert 0 < err < 0.05


def test_calibration_sources(tmp_path):
    from PIL import Image

    from edgesr.distill.generator import Generator, save_generators

    torch.manual_seed(0)
    save_generators({2: Generator(24, z_dim=16, channels=8)}, tmp_path / "run")
    calib = find_calibration(str(tmp_path / "run"), "pytorch-vdsr")
    lr = lr_samples(calib, 2, 5)
    assert calib.kind == "generators" and lr.shape == (5, 1, 24, 24) and 0 <= lr.min() and lr.max() <= 1
    assert model_inputs(lr, 2, "bicubic").shape == (5, 1, 48, 48)
    with pytest.raises(EdgesrError, match="no generator for x3"):
        lr_samples(calib, 3, 2)
    (tmp_path / "imgs").mkdir()
    pixels = (np.random.default_rng(0).random((60, 70, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(tmp_path / "imgs" / "a.png")
    lr = lr_samples(find_calibration(str(tmp_path / "imgs"), "m"), 3, 4)
    assert lr.shape == (4, 1, 16, 16)


def test_qad_reduces_the_fake_quantized_error():
    net = tiny(width=8, depth=5, seed=1)
    rng = np.random.default_rng(0)
    pool = {2: rng.random((32, 1, 12, 12)).astype(np.float32)}
    x = torch_imresize(torch.from_numpy(pool[2][:8]), 2.0)
    fp32 = torch_to_onnx(DeployNet(net, 2, "bicubic"))
    with tempfile.TemporaryDirectory() as tmp:
        in_ranges = conv_input_ranges(fp32, calibrate(fp32, x.numpy(), "minmax", Path(tmp) / "r.json"))
    assert len(in_ranges) == 5 and in_ranges[1][0] == 0.0  # body convs read a ReLU's output

    def error(model: VDSR) -> float:
        with torch.no_grad():
            return float(((fake_quantized(model, in_ranges, [0, 4], "tensorrt")(x) - net(x)) ** 2).mean())

    tuned = distill_quantized(net, pool, in_ranges, [0, 4], "tensorrt", steps=15, batch=8)
    assert error(tuned) < 0.95 * error(net)


def test_mse_threshold_minimises_the_quantization_error_of_the_samples():
    rng = np.random.default_rng(0)
    # post-ReLU-like: half zeros, a long right tail
    x = np.where(rng.random(200_000) < 0.5, 0.0, rng.lognormal(-2.0, 1.0, 200_000)).astype(np.float32)
    hist, edges = np.histogram(np.abs(x), bins=2048)

    def sample_mse(t: float, levels: int) -> float:
        step = t / levels
        return float(np.mean((x - np.minimum(np.round(x / step), levels) * step) ** 2))

    for levels in (127, 255):
        t = mse_threshold(hist, edges, levels)
        grid = np.linspace(x.max() / 200, x.max(), 200)
        brute = min(sample_mse(g, levels) for g in grid)
        assert sample_mse(t, levels) <= 1.02 * brute
        assert sample_mse(t, levels) <= sample_mse(float(np.percentile(x, 99.999)), levels)
        assert sample_mse(t, levels) < sample_mse(float(x.max()), levels)  # min-max
    assert mse_threshold(hist, edges, 255) > mse_threshold(hist, edges, 127)  # a finer grid affords a wider range
    assert mse_range(hist, edges, -1.0, symmetric=False)[0] < 0 and mse_range(hist, edges, 0.0, False)[0] == 0


def test_mse_ranges_are_fitted_per_form(lr_onnx, tmp_path):
    x = np.random.default_rng(0).random((16, 1, 16, 16), dtype=np.float32)
    trt = calibrate(lr_onnx, x, "mse", tmp_path / "trt.json", "tensorrt")
    cpu = calibrate(lr_onnx, x, "mse", tmp_path / "cpu.json", "cpu")
    assert (trt.form, cpu.form) == ("tensorrt", "cpu")
    with pytest.raises(ValueError, match="fitted to the cpu form"):
        quantize(lr_onnx, cpu, "tensorrt")
    layers = conv_layers(lr_onnx)
    q = quantize(lr_onnx, trt, "tensorrt", [layers.net[0], layers.net[-1]])
    y, ref = run(q, x[:1]), run(lr_onnx, x[:1])
    assert 0 < np.abs(y - ref).max() < 0.1


def test_sensitivity_ranks_layers_and_auto_keeps_the_costliest_float(lr_onnx, ranges):
    x = np.random.default_rng(3).random((8, 1, 16, 16), dtype=np.float32)
    costs = sensitivity(lr_onnx, ranges, "tensorrt", x)
    assert len(costs) == 5 and all(c > 0 for c in costs)
    keep = most_sensitive(costs, 2)
    assert len(keep) == 2 and min(costs[i] for i in keep) >= max(c for i, c in enumerate(costs) if i not in keep)
    assert FloatLayers.parse("auto:2").indices(5, costs) == keep
    assert (FloatLayers.parse("auto", "tensorrt").auto, FloatLayers.parse("auto", "cpu").auto) == (4, 2)
    assert FloatLayers.parse("0,-1").indices(5, None) == [0, 4]
    assert FloatLayers.parse("none").indices(5, None) == []
    for bad in ("auto:x", "a,b", "auto:-1"):
        with pytest.raises(EdgesrError, match="--float-layers"):
            FloatLayers.parse(bad)
    with pytest.raises(EdgesrError, match="has 5 convs"):
        FloatLayers.parse("7").indices(5, None)


def test_coreml_package_spec(tmp_path):
    ct = pytest.importorskip("coremltools")
    from edgesr.export.coreml import MAX_SIDE, to_coreml

    meta = ArtifactMeta(2, "lr", "int8", model="tiny")
    (tmp_path / "m.mlpackage").mkdir()
    to_coreml(DeployNet(tiny(width=16, depth=3), 2, "lr"), meta, tmp_path / "m.mlpackage")
    spec = ct.utils.load_spec(str(tmp_path / "m.mlpackage"))
    assert [i.name for i in spec.description.input] == ["input"]
    assert [o.name for o in spec.description.output] == ["output"]
    arr = spec.description.input[0].type.multiArrayType
    assert arr.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
    assert ranges == [(1, 1), (1, 1), (4, MAX_SIDE), (4, MAX_SIDE)]
    assert ArtifactMeta.from_props(dict(spec.description.metadata.userDefined)) == meta
    ops = [op for block in spec.mlProgram.functions["main"].block_specializations.values() for op in block.operations]
    kinds = {op.type for op in ops}
    assert "constexpr_affine_dequantize" in kinds or "constexpr_blockwise_shift_scale" in kinds  # 8-bit weights
    fp16 = ct.proto.MIL_pb2.DataType.Value("FLOAT16")
    assert any(o.type.tensorType.dataType == fp16 for op in ops if op.type == "conv" for o in op.outputs)


def test_calibration_from_priors_is_the_data_free_default(tmp_path):
    calib = find_calibration("dead-leaves,pink-noise", "m")
    assert calib.kind == "priors" and calib.priors == ("dead-leaves", "pink-noise")
    lr = lr_samples(calib, 3, 6)
    assert lr.shape == (6, 1, 16, 16) and lr.dtype == np.float32 and 0 <= lr.min() and lr.max() <= 1
    assert lr.std() > 0.02  # images with content, not flat
    np.testing.assert_array_equal(lr, lr_samples(calib, 3, 6))  # reproducible from the seed
    assert find_calibration(None, "pytorch-vdsr").describe() == {"kind": "priors", "priors": ["dead-leaves"],
                                                                 "weights": [1.0]}
    # a run that trained on a prior pool only is calibrated on its priors, not its unused generators
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("name: r\nsamples: {priors: [pink-noise], pool_images: 4, generator_share: 0}\n")
    (run / "student.safetensors").write_bytes(b"")
    assert find_calibration(None, str(run / "student.safetensors")).priors == ("pink-noise",)
    with pytest.raises(EdgesrError, match="not a folder nor a prior"):
        find_calibration("leaves", "m")


@pytest.mark.parametrize("family", ["vdsr-half", "lr-plain"])
def test_equalization_keeps_the_function_and_evens_the_channel_ranges(family):
    from edgesr.export.equalize import channel_ranges, equalized
    from edgesr.models.registry import create_student

    torch.manual_seed(0)
    net = create_student(family, scale=2, width=8, depth=5, anchor="repeat" if family == "lr-plain" else None).eval()
    with torch.no_grad():  # uneven channels, as training leaves them
        for conv in net.convs()[:-1]:
            conv.weight.mul_(torch.logspace(-1, 0.5, conv.out_channels).view(-1, 1, 1, 1))
        net.convs()[-1].weight.normal_(0, 0.1)
    x = np.random.default_rng(0).random((6, 1, 12, 12)).astype(np.float32)
    eq = equalized(net, x)
    with torch.no_grad():
        torch.testing.assert_close(eq(torch.from_numpy(x)), net(torch.from_numpy(x)), atol=1e-5, rtol=0)
    spread = lambda r: float(r.max() / r[r > 0].min())  # noqa: E731
    before, after = channel_ranges(net, x), channel_ranges(eq, x)
    assert all(spread(a) < spread(b) / 2 for a, b in zip(after, before))
    assert all(spread(a) <= 1 + 1e-4 for a, b in zip(after, before) if spread(b) <= 16)
    with pytest.raises(ValueError, match="not a chain"):
        equalized(torch.nn.Identity(), x)


def test_int8_settings_reach_the_model_and_its_record():
    from edgesr.export.calibration import Calibration
    from edgesr.export.int8 import Int8Settings, int8_onnx
    from edgesr.models.registry import create_student

    torch.manual_seed(0)
    net = create_student("lr-plain", scale=2, width=8, depth=4, anchor="repeat").eval()
    calib = Calibration("priors", priors=("dead-leaves",), weights=(1.0,))
    model, made = int8_onnx(net, 2, "lr", calib, "cpu", Int8Settings(samples=8, lr_patch=20, equalize=1.0,
                                                                       float_layers="0,-1"))
    assert made["calibration_patch"] == 20 and made["equalize"] == 1.0 and made["float_layers"] == [0, 3]
    x = lr_samples(calib, 2, 4, seed=5)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = np.concatenate([run(model, x[i : i + 1]) for i in range(len(x))])
    assert np.abs(out - ref).max() < 0.05  # INT8 tracks the float network it was made from
    _, plain = int8_onnx(net, 2, "lr", calib, "cpu", Int8Settings(samples=8))
    assert plain["calibration_patch"] == 24 and plain["equalize"] == 0.0


def test_a_runs_recipe_sets_its_qad_and_the_flag_overrides_it(tmp_path):
    from edgesr.export.int8 import QAD_LR, run_settings

    run = tmp_path / "run"
    run.mkdir()
    (run / "student.safetensors").write_bytes(b"")
    model = str(run / "student.safetensors")
    plain = run_settings(model, "percentile", "auto", None)
    assert (plain.qad_steps, plain.qad_lr) == (0, QAD_LR)  # no recipe: post-training only
    (run / "recipe.yaml").write_text("name: r\nint8: {qad_steps: 30, qad_lr: 3.0e-6}\n")
    own = run_settings(model, "mse", "0,-1", None)
    assert (own.method, own.float_layers, own.qad_steps, own.qad_lr) == ("mse", "0,-1", 30, 3e-6)
    assert run_settings(model, "mse", "auto", 0).qad_steps == 0
    (run / "recipe.yaml").write_text("name: r\nint8: {qad_steps: -1}\n")
    with pytest.raises(EdgesrError, match="int8.qad_steps"):
        run_settings(model, "mse", "auto", None)


def test_qad_fake_quantizes_what_the_cpu_form_quantizes():
    net = tiny(width=8, depth=5)
    ranges = [(0.0, 1.0)] * len(net.convs())
    kinds = lambda fq: [(type(c).__name__, getattr(c, "weights", None)) for c in fq.convs()]  # noqa: E731
    wrapped = ("_FakeQuantConv", True)
    # the float tail reads the uint8 output of a quantized conv: its input is quantized, its weights not
    assert kinds(fake_quantized(net, ranges, [0, 4], "cpu")) == [("Conv2d", None), *[wrapped] * 3,
                                                                  ("_FakeQuantConv", False)]
    # after a float conv the input stays float; the TensorRT form quantizes quantized convs' inputs only
    assert kinds(fake_quantized(net, ranges, [0, 1], "cpu"))[:2] == [("Conv2d", None), ("Conv2d", None)]
    assert kinds(fake_quantized(net, ranges, [0, 4], "tensorrt"))[-1] == ("Conv2d", None)
