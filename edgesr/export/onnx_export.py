"""torch -> one self-contained, simplified, checked ONNX file with edgesr metadata.

Opset 20: the newest opset that TensorRT 10.3 (JetPack 6, the Jetsons in the field) parses,
and new enough for per-channel Q/DQ. Height and width are dynamic; batch and channels are 1.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from ..artifact import ArtifactMeta
from ..io import atomic_path

OPSET = 20
#: smallest input side the exported graph accepts (the in-graph bicubic mirrors 2 pixels)
MIN_SIDE = 4
MAX_SIDE = 8192


def torch_to_onnx(module: torch.nn.Module, sample_side: int = 16) -> onnx.ModelProto:
    """Export ``module`` (one ``1x1xHxW`` float32 input) with dynamic H/W, simplified and checked."""
    import onnxsim

    module = module.eval()
    height = torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE)
    width = torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)
    x = torch.rand(1, 1, sample_side, sample_side)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (x,), None, input_names=["input"], output_names=["output"], opset_version=OPSET,
            dynamo=True, dynamic_shapes=({2: height, 3: width},), external_data=False, verbose=False,
        )
    model = program.model_proto
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model")
    onnx.checker.check_model(simplified, full_check=True)
    return simplified


def set_metadata(model: onnx.ModelProto, meta: ArtifactMeta) -> onnx.ModelProto:
    """Replace the model's edgesr ``metadata_props`` with ``meta``'s (in place; returned)."""
    props = meta.to_props()
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    return model


def read_metadata(path: str | Path) -> ArtifactMeta:
    """The edgesr metadata of an ONNX file, without loading its weights into torch."""
    model = onnx.load(str(path), load_external_data=False)
    return ArtifactMeta.from_props({p.key: p.value for p in model.metadata_props}, source=str(path))


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path:
    """One file (no external data), written atomically after the checker passes."""
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp), save_as_external_data=False)
    return Path(path)
