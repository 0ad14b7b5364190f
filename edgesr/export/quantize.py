"""INT8 QDQ models in two forms from one code path (onnxruntime's static quantizer).

* ``tensorrt``: symmetric int8 activations per tensor and symmetric int8 weights per output
  channel (axis 0), all zero points 0: TensorRT's explicit quantization (TensorRT 11 has no
  other INT8 path).
* ``cpu``: uint8 asymmetric activations, int8 per-channel weights: the form onnxruntime's x86
  kernels run fastest.

Only ``Conv`` layers are quantized. The VDSR convs that stay in float are chosen by the caller
(:func:`sensitivity` measures what each one costs); the in-graph bicubic conv always stays in
float (it sees the raw image), and the global skip ``Add`` is never quantized, so the output
adds the *float* input to the residual. Calibration runs once per (method, data) and is cached
as ranges, so trying several float-layer choices or both forms re-uses it (``mse`` ranges
depend on the form's grid, so they are made per form).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from .quiet import quiet

FORMS = ("tensorrt", "cpu")
METHODS = ("minmax", "entropy", "percentile", "mse")
#: Relu too, so its output (not the conv's, half of whose range Relu discards) is quantized
OP_TYPES = ["Conv", "Relu"]


@dataclass(frozen=True)
class ConvLayers:
    """Names of the VDSR convs in graph order, and the pre-processing convs before them."""

    net: list[str]
    pre: list[str]


def conv_layers(model: onnx.ModelProto) -> ConvLayers:
    """Split the graph's convs: VDSR's have 3x3 kernels; the bicubic's is 5x5 with s*s outputs."""
    inits = {t.name: t for t in model.graph.initializer}
    net, pre = [], []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        w = inits.get(node.input[1])
        kernel = tuple(w.dims[2:]) if w is not None else ()
        (net if kernel == (3, 3) else pre).append(node.name)
    return ConvLayers(net, pre)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an array of ``(n, 1, h, w)`` inputs."""

    def __init__(self, inputs: np.ndarray, batch: int = 8) -> None:
        self.batches = [np.ascontiguousarray(inputs[i : i + batch], np.float32) for i in range(0, len(inputs), batch)]
        self.rewind()

    def get_next(self) -> dict | None:
        return next(self.pending, None)

    def rewind(self) -> None:
        self.pending = iter([{"input": b} for b in self.batches])


def _batched(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose input and output accept any batch, so calibration can run batches."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for value in (*out.graph.input, *out.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del out.graph.value_info[:]
    return out


@dataclass(frozen=True)
class Ranges:
    """Calibrated activation ranges (onnxruntime's cache file), the method that made them and,
    for ``mse``, the form whose grid they were fitted to."""

    path: Path
    method: str
    form: str | None = None


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    # mse collects |x| histograms with the percentile calibrator, then picks its own clips
    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile, "mse": CalibrationMethod.Percentile}[name]


#: Calibrator settings. onnxruntime's entropy default (128 histogram bins into 128 quantized
#: bins) leaves a single candidate threshold, i.e. min-max; quantize_static cannot change it,
#: hence the calibrator is driven directly.
_CALIB_OPTIONS = {
    "minmax": {},
    "entropy": {"num_bins": 2048, "num_quantized_bins": 128},
    "percentile": {"num_bins": 2048, "percentile": 99.999},
    "mse": {"num_bins": 2048, "percentile": 100.0, "symmetric": True},
}


def calibrate(model: onnx.ModelProto, inputs: np.ndarray, method: str, cache: Path, form: str = "tensorrt") -> Ranges:
    """Activation ranges of every conv's tensors on ``inputs`` with ``method``, saved to ``cache``.

    ``form`` matters to ``mse`` only (symmetric int8 and uint8 grids clip differently).
    """
    from onnxruntime.quantization.calibrate import TensorData, create_calibrator, save_tensors_data

    from .clipping import mse_range

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    with tempfile.TemporaryDirectory(prefix="edgesr-calib-") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(_batched(model), str(src))
        with quiet(""):  # the quantizer logs pre-processing advice; histogram calibrators print progress
            calibrator = create_calibrator(src, OP_TYPES, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                           calibrate_method=_method(method), extra_options=_CALIB_OPTIONS[method])
            calibrator.collect_data(_Reader(inputs))
            data = calibrator.compute_data()
        if method == "mse":
            for name, (hist, edges, lowest, _) in calibrator.collector.get_histogram_dict().items():
                low, high = mse_range(hist, edges, float(lowest), symmetric=form == "tensorrt")
                data[name] = TensorData(lowest=np.float32(low), highest=np.float32(high))
        save_tensors_data(data, cache)
    return Ranges(cache, method, form if method == "mse" else None)


_FORM_OPTIONS = {
    # Q/DQ on conv inputs only, as TensorRT wants them: it fuses conv + ReLU and requantizes
    # itself; a Q/DQ on the conv output as well would round twice.
    "tensorrt": {"ActivationSymmetric": True, "WeightSymmetric": True,
                 "OpTypesToExcludeOutputQuantization": ["Conv", "Relu"]},
    # onnxruntime's CPU kernels only become QLinearConv with a Q on the output; uint8 with zero
    # point 0 absorbs the ReLU.
    "cpu": {"ActivationSymmetric": False, "WeightSymmetric": True},
}


def quantize(model: onnx.ModelProto, ranges: Ranges, form: str, float_layers: Sequence[str] = ()) -> onnx.ModelProto:
    """The QDQ model of ``form`` from cached ranges; ``float_layers`` (and the bicubic) stay float."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if ranges.form not in (None, form):
        raise ValueError(f"these {ranges.method} ranges were fitted to the {ranges.form} form, not {form}")
    layers = conv_layers(model)
    activation = QuantType.QInt8 if form == "tensorrt" else QuantType.QUInt8
    with tempfile.TemporaryDirectory(prefix="edgesr-quant-") as tmp, quiet(""):
        out = Path(tmp) / "q.onnx"
        quantize_static(
            model, out, None, quant_format=QuantFormat.QDQ, op_types_to_quantize=OP_TYPES,
            nodes_to_exclude=[*layers.pre, *float_layers], per_channel=True,
            weight_type=QuantType.QInt8, activation_type=activation, calibrate_method=_method(ranges.method),
            calibration_cache_path=ranges.path,
            extra_options=_FORM_OPTIONS[form],
        )
        quantized = onnx.load(str(out))
    del quantized.graph.value_info[:]
    return quantized


def conv_input_ranges(model: onnx.ModelProto, ranges: Ranges) -> list[tuple[float, float]]:
    """The calibrated ``(low, high)`` of each VDSR conv's input, in graph order: what QAD's
    fake quantization uses, so the fine-tuned weights meet the ranges they will be exported with."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    data = load_tensors_data(ranges.path)
    inputs = {node.name: node.input[0] for node in model.graph.node if node.op_type == "Conv"}
    bounds = (data[inputs[name]].range_value for name in conv_layers(model).net)
    return [(float(np.ravel(low)[0]), float(np.ravel(high)[0])) for low, high in bounds]


def cpu_session(model: onnx.ModelProto):
    """An onnxruntime CPU session of an in-memory model on the command's threads (:mod:`edgesr.threads`)."""
    import onnxruntime as ort

    from ..threads import chosen

    so = ort.SessionOptions()
    so.intra_op_num_threads = chosen()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def batched_session(model: onnx.ModelProto):
    """A CPU session of ``model`` that takes batches of any size."""
    return cpu_session(_batched(model))


def run_batch(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    """The model's outputs for a batch of inputs, on onnxruntime's CPU provider."""
    return batched_session(model).run(None, {"input": np.ascontiguousarray(inputs, np.float32)})[0]


def sensitivity(model: onnx.ModelProto, ranges: Ranges, form: str, inputs: np.ndarray,
                on_layer: Callable[[int, int], None] | None = None) -> list[float]:
    """What quantizing each VDSR conv alone costs: the mean squared difference between the
    float model's outputs and those of the model with only that conv quantized, in graph order.

    Measured on the calibration inputs, so the choice of float layers stays data-free.
    """
    names = conv_layers(model).net
    reference = run_batch(model, inputs)
    costs = []
    for i, name in enumerate(names):
        single = quantize(model, ranges, form, [n for n in names if n != name])
        costs.append(float(np.mean((run_batch(single, inputs) - reference) ** 2)))
        if on_layer:
            on_layer(i + 1, len(names))
    return costs


def most_sensitive(costs: Sequence[float], count: int) -> list[int]:
    """Indices of the ``count`` costliest layers, ascending."""
    return sorted(int(i) for i in np.argsort(costs)[::-1][:count])
