"""The network as it is deployed: optional in-graph bicubic, learned branch, float32 anchor.

One torch module feeds every exporter (ONNX, CoreML), so the ``lr``/``bicubic`` input kinds and
the FP16 variant are built once, for every student family (:class:`edgesr.models.srnet.SRNet`).
In FP16 only the learned branch runs in half precision: the bicubic taps and the anchor (VDSR's
skip, an LR network's repeated pixels or bicubic phases) stay in float32, because the anchor
carries the whole image and FP16's step near 1.0 (2^-11) would otherwise be added to every
output pixel. Over-parameterised training forms are folded first: the artifact is the plain
network.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import EdgesrError
from ..models.reparam import folded
from ..models.srnet import SRNet
from ..ops.bicubic_graph import BicubicUpscale


class DeployNet(nn.Module):
    """``input -> [bicubic xs] -> assemble(anchor(x) + residual(x))`` with float32 ``input`` and ``output``.

    ``input_kind`` is what the artifact takes: ``lr`` (an LR-space network takes it as it is; a
    bicubic-input network gets the MATLAB bicubic in the graph) or ``bicubic`` (the bicubic
    image, which only a bicubic-input network can take)."""

    def __init__(self, net: SRNet, scale: int, input_kind: str, half: bool = False) -> None:
        super().__init__()
        if net.input_kind == "lr":
            if input_kind != "lr":
                raise EdgesrError(f"this {net.arch or 'network'} works at LR: it takes --input lr only")
            if net.scale != scale:
                raise EdgesrError(f"this {net.arch or 'network'} upscales by x{net.scale} only, not x{scale}")
        self.upscale = BicubicUpscale(scale) if input_kind == "lr" and net.input_kind == "bicubic" else nn.Identity()
        self.half_branch = half
        branch = folded(copy.deepcopy(net)).eval()
        self.net = branch.half() if half else branch
        if half and getattr(branch, "bicubic", None) is not None:
            branch.bicubic.float()  # an LR network's bicubic anchor is part of the float32 anchor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.upscale(x)
        if self.half_branch:
            return self.net.assemble(self.net.anchor(x) + self.net.residual(x.half()).float())
        return self.net(x)
