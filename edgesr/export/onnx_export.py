"""torch -> one self-contained, simplified, checked ONNX file with edgesr metadata.

Opset 20: the newest opset that TensorRT 10.3 (JetPack 6, the Jetsons in the field) parses,
and new enough for per-channel Q/DQ. Height and width are dynamic; batch and channels are 1.
onnxsim has no wheel for ARM hosts; without it the graph is exported unsimplified (torch's
exporter already folds constants: on edgesr's models onnxsim leaves the node list unchanged)
and still passes the full checker.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

from ..artifact import ArtifactMeta
from ..io import atomic_path
from ..optional import available
from .quiet import quiet

OPSET = 20
#: smallest input side the exported graph accepts (the in-graph bicubic mirrors 2 pixels)
MIN_SIDE = 4
MAX_SIDE = 8192


def torch_to_onnx(module: torch.nn.Module) -> onnx.ModelProto:
    """Export ``module`` (one ``1x1xHxW`` float32 input) with dynamic H/W, simplified (where
    onnxsim is installed, see :func:`simplification_note`) and checked."""
    module = module.eval()
    height = torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE)
    width = torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)
    x = torch.rand(1, 1, 16, 16)
    with quiet("torch.onnx"):
        program = torch.onnx.export(
            module, (x,), None, input_names=["input"], output_names=["output"], opset_version=OPSET,
            dynamo=True, dynamic_shapes=({2: height, 3: width},), external_data=False, verbose=False,
        )
    model = program.model_proto
    if available("onnxsim"):
        import onnxsim

        model, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified model")
    onnx.checker.check_model(model, full_check=True)
    return model


def simplification_note() -> str | None:
    """The line an export prints where onnxsim is absent, so the user knows the graph is unsimplified."""
    if available("onnxsim"):
        return None
    return "onnxsim is not installed (no wheel for ARM hosts): skipped simplification; the ONNX passed the full checker"


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
