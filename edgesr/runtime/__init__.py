"""Torch-free inference on exported artifacts: one :class:`Upscaler` over onnxruntime,
TensorRT and CoreML, chosen from the file, plus photo handling and tiling.

Never imports torch, at module level or later: this is what runs on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import EdgesrError
from .base import Upscaler

__all__ = ["Upscaler", "open_upscaler"]


def open_upscaler(path: str | Path, threads: int | None = None,
                  providers: Sequence[str] | None = None) -> Upscaler:
    """Load an artifact with the runtime its file type calls for, checked against its metadata.

    ``threads`` and ``providers`` (e.g. ``["cuda", "cpu"]``) tune onnxruntime; TensorRT engines
    and CoreML packages pick their own device and refuse ``providers``.
    """
    from . import coreml, tensorrt

    path = Path(path)
    if not path.exists():
        raise EdgesrError(f"model not found: {path}")
    suffix = path.suffix.lower()
    upscaler: Upscaler
    if suffix == ".onnx":
        from .onnx import OnnxUpscaler

        upscaler = OnnxUpscaler(path, threads=threads, providers=providers)
    elif providers:
        raise EdgesrError(f"--providers applies to ONNX models only, not {path.name}")
    elif suffix in tensorrt.SUFFIXES:
        upscaler = tensorrt.TensorRTUpscaler(path)
    elif suffix in coreml.SUFFIXES:
        upscaler = coreml.CoreMLUpscaler(path)
    else:
        known = (".onnx",) + tensorrt.SUFFIXES + coreml.SUFFIXES
        raise EdgesrError(f"unknown model type {path.name}: expected one of {', '.join(known)}")
    upscaler.check_graph()
    return upscaler
