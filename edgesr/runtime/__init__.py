"""Torch-free inference on exported artifacts: one :class:`Upscaler` over onnxruntime,
TensorRT and CoreML, chosen from the file, plus photo handling and tiling.

Never imports torch, at module level or later: this is what runs on the device.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from ..artifact import BUNDLE_MODEL
from ..errors import EdgesrError
from . import coreml, onnx, tensorrt
from .base import Upscaler

__all__ = ["Upscaler", "open_upscaler", "resolve_artifact"]


def resolve_artifact(path: str | Path) -> Path:
    """The model file an artifact path means: the path itself, or for a TensorRT bundle folder
    (``edgesr export --target tensorrt``) its engine where one was built and TensorRT imports
    here, else its ONNX (run by onnxruntime)."""
    path = Path(path)
    if not path.is_dir() or path.suffix.lower() in coreml.SUFFIXES:
        return path
    engine, onnx = path / f"{BUNDLE_MODEL}.engine", path / f"{BUNDLE_MODEL}.onnx"
    if engine.is_file() and tensorrt.sidecar(engine).is_file() and importlib.util.find_spec("tensorrt"):
        return engine
    if onnx.is_file():
        return onnx
    raise EdgesrError(f"{path} is a folder but not a TensorRT bundle from edgesr export (no {onnx.name})")


def open_upscaler(path: str | Path, threads: int | None = None,
                  providers: Sequence[str] | None = None) -> Upscaler:
    """Load an artifact with the runtime its file type calls for, checked against its metadata.

    ``threads`` and ``providers`` (e.g. ``["cuda", "cpu"]``) tune onnxruntime; TensorRT engines
    and CoreML packages pick their own device and refuse ``providers``.
    """
    path = Path(path)
    if not path.exists():
        raise EdgesrError(f"model not found: {path}")
    path = resolve_artifact(path)
    suffix = path.suffix.lower()
    upscaler: Upscaler
    if suffix == ".onnx":
        upscaler = onnx.OnnxUpscaler(path, threads=threads, providers=providers)
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
