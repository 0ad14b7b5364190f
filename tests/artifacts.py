"""Small edgesr artifacts for runtime tests, made with torch here so the runtime never needs it.

Real artifacts come from ``edgesr.export``; these only exercise the contract the runtime
reads: one ``input``/``output`` float32 ``1x1xHxW`` tensor with dynamic H/W, and the
``edgesr.*`` metadata from :class:`edgesr.artifact.ArtifactMeta`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from edgesr.artifact import ArtifactMeta
from edgesr.export.onnx_export import set_metadata
from edgesr.models import VDSR


def tiny_vdsr(seed: int = 0, width: int = 4, depth: int = 3) -> VDSR:
    torch.manual_seed(seed)
    return VDSR(width=width, depth=depth).eval()


def export_onnx(net: nn.Module, path: Path, meta: ArtifactMeta | None) -> Path:
    """``net`` as an ONNX file with dynamic H/W and, unless ``meta`` is None, edgesr metadata."""
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.rand(1, 1, 16, 16), str(path), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "H", 3: "W"}},
                          opset_version=17, dynamo=False)
    if meta is not None:
        onnx.save(set_metadata(onnx.load(str(path)), meta), str(path))
    return path


def bicubic_artifact(path: Path, net: nn.Module | None = None, scale: int = 2, precision: str = "fp32") -> Path:
    """The network alone, fed the MATLAB-bicubic upscaled Y (the paper's protocol)."""
    meta = ArtifactMeta(scale=scale, input_kind="bicubic", precision=precision, model="tiny-test")
    return export_onnx(net if net is not None else tiny_vdsr(), path, meta)


class NearestThenNet(nn.Module):
    """An ``lr``-kind stand-in: nearest upsampling then the network (the real one has MATLAB bicubic)."""

    def __init__(self, net: nn.Module, scale: int) -> None:
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest"))


def lr_artifact(path: Path, net: nn.Module | None = None, scale: int = 2) -> Path:
    meta = ArtifactMeta(scale=scale, input_kind="lr", precision="fp32", model="tiny-test")
    return export_onnx(NearestThenNet(net if net is not None else tiny_vdsr(), scale), path, meta)


def foreign_onnx(path: Path) -> Path:
    """A valid ONNX model from some other tool: an Identity, no edgesr metadata."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "foreign", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def affine_artifact(path: Path, a: float = 0.9, b: float = 0.05, scale: int = 2) -> Path:
    """A ``bicubic``-kind model computing ``a * input + b``: photo tests can predict its output."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "h", "w"])
    consts = [helper.make_tensor("a", TensorProto.FLOAT, [], [a]), helper.make_tensor("b", TensorProto.FLOAT, [], [b])]
    nodes = [helper.make_node("Mul", ["input", "a"], ["ax"]), helper.make_node("Add", ["ax", "b"], ["output"])]
    model = helper.make_model(helper.make_graph(nodes, "affine", [x], [y], initializer=consts),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(set_metadata(model, ArtifactMeta(scale=scale, input_kind="bicubic", precision="fp32")), str(path))
    return path
