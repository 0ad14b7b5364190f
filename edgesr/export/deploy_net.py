"""The network as it is deployed: optional in-graph bicubic, learned branch, float32 skip.

One torch module feeds every exporter (ONNX, CoreML), so the ``lr``/``bicubic`` input kinds and
the FP16 variant are built once. In FP16 only the learned branch runs in half precision: the
bicubic taps and the global skip stay in float32, because the skip carries the whole image and
FP16's step near 1.0 (2^-11) would otherwise be added to every output pixel.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models.vdsr import VDSR
from .bicubic_graph import BicubicUpscale


class DeployNet(nn.Module):
    """``input -> [bicubic xs] -> x + residual(x)`` with float32 ``input`` and ``output``."""

    def __init__(self, net: VDSR, scale: int, input_kind: str, half: bool = False) -> None:
        super().__init__()
        self.upscale = BicubicUpscale(scale) if input_kind == "lr" else nn.Identity()
        self.half_branch = half
        branch = copy.deepcopy(net).eval()
        self.net = branch.half() if half else branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.upscale(x)
        if self.half_branch:
            return x + self.net.residual(x.half()).float()
        return x + self.net.residual(x)
