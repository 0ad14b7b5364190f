"""Serialized TensorRT engines (Jetson, NVIDIA GPUs), run through TensorRT's Python API.

An engine has no metadata slot, so edgesr's exporter writes the artifact metadata (the same
``edgesr.*`` keys as ONNX ``metadata_props``) to a JSON file beside it: ``model.engine.json``.
Device memory is handled with ``cuda-python`` (the ``cuda`` package), the binding NVIDIA ships
for TensorRT 10; both are imported only when an engine is opened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifact import ArtifactMeta
from ..errors import EdgesrError
from ..optional import MissingPackage, require
from ..untrusted import read_json
from .base import Upscaler

SUFFIXES = (".engine", ".plan", ".trt")
#: edgesr writes about 1 kB of metadata; a larger sidecar is some other file
MAX_SIDECAR_BYTES = 1 << 20


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_sidecar_meta(path: Path) -> ArtifactMeta:
    """The engine's metadata from ``<engine>.json``; missing or foreign is a one-line error."""
    side = sidecar(path)
    if not side.is_file():
        raise EdgesrError(f"{path} has no metadata file {side.name} beside it (was it exported by edgesr?)")
    try:
        with open(side, "rb") as f:
            text = f.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise EdgesrError(f"cannot read {side}: {exc.strerror or type(exc).__name__}") from None
    if len(text) > MAX_SIDECAR_BYTES:
        raise EdgesrError(f"{side} is over {MAX_SIDECAR_BYTES >> 10} kB: not edgesr metadata")
    try:
        props = read_json(text)
    except ValueError as exc:
        raise EdgesrError(f"cannot read {side}: {exc}") from None
    if not isinstance(props, dict):
        raise EdgesrError(f"{side} is not a JSON object of edgesr metadata")
    return ArtifactMeta.from_props({str(k): str(v) for k, v in props.items()}, source=str(path))


def _cudart():
    """cuda-python's runtime API: ``cuda.bindings.runtime`` from 12.6 on, ``cuda.cudart`` before."""
    try:
        return require("cuda.bindings.runtime", "tensorrt", "running a TensorRT engine")
    except MissingPackage:
        return require("cuda.cudart", "tensorrt", "running a TensorRT engine")


def _check(result):
    """cuda-python returns ``(error, *values)``; turn a non-success code into an error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EdgesrError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else values


class TensorRTUpscaler(Upscaler):
    backend = "tensorrt"

    def __init__(self, path: Path) -> None:
        meta = read_sidecar_meta(path)
        trt = require("tensorrt", "tensorrt", f"{path.name} (a TensorRT engine)")
        self._cudart = _cudart()
        super().__init__(path, meta)
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EdgesrError(f"cannot load {path}: built for another TensorRT version or GPU? Rebuild it here")
        self.context = self.engine.create_execution_context()
        self.stream = _check(self._cudart.cudaStreamCreate())
        self._buffers: dict[tuple, tuple[int, int]] = {}

    def probe_size(self) -> tuple[int, int]:
        """The default probe brought inside what the engine accepts: its static input shape,
        or the range of its first optimization profile."""
        h, w = super().probe_size()
        shape = tuple(self.engine.get_tensor_shape("input"))
        if len(shape) == 4 and min(shape) > 0:
            return int(shape[2]), int(shape[3])
        lo, _opt, hi = (tuple(d) for d in self.engine.get_tensor_profile_shape("input", 0))
        return int(min(max(h, lo[2]), hi[2])), int(min(max(w, lo[3]), hi[3]))

    def _device_buffers(self, in_shape: tuple, out_shape: tuple) -> tuple[int, int]:
        """Device memory for one input/output shape, kept: benchmark loops repeat shapes."""
        key = (in_shape, out_shape)
        if key not in self._buffers:
            for d_in, d_out in self._buffers.values():
                _check(self._cudart.cudaFree(d_in))
                _check(self._cudart.cudaFree(d_out))
            self._buffers = {key: (_check(self._cudart.cudaMalloc(4 * int(np.prod(in_shape)))),
                                   _check(self._cudart.cudaMalloc(4 * int(np.prod(out_shape)))))}
        return self._buffers[key]

    def _run(self, x: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        if not self.context.set_input_shape("input", x.shape):
            raise EdgesrError(f"{self.path.name} does not accept input shape {x.shape} (its optimization profile)")
        out = np.empty(tuple(self.context.get_tensor_shape("output")), np.float32)
        d_in, d_out = self._device_buffers(x.shape, out.shape)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, h2d, self.stream))
        self.context.set_tensor_address("input", d_in)
        self.context.set_tensor_address("output", d_out)
        if not self.context.execute_async_v3(self.stream):
            raise EdgesrError(f"TensorRT failed to run {self.path.name}")
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return out
