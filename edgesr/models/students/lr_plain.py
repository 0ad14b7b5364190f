"""LR-space students: a plain stack of 3x3 convs on the LR image, a last conv to ``s*s``
channels, one pixel shuffle (ONNX ``DepthToSpace``) to the HR image.

Every conv runs at 1/s^2 of the output's pixels, so at x2 a 32-wide, 12-deep network costs
about a tenth of VDSR-half's multiply-adds per output pixel, and at x4 a fortieth. The output
is an *anchor* plus what the network learns, added before the shuffle:

* ``repeat``: the LR pixel itself in each of the ``s*s`` phases (nearest-neighbour upsampling),
  added by broadcasting: no arithmetic, so it stays exact in INT8;
* ``bicubic``: MATLAB's bicubic phases (a fixed 5x5 conv with mirror padding,
  :class:`edgesr.ops.bicubic_graph.BicubicUpscale`), the anchor VDSR's skip gives it.

Convs have biases and ReLUs between them; the body is He-initialised and the last conv starts
at zero, so a new network is exactly its anchor. ``lr-rep`` is the same network trained
over-parameterised (:mod:`edgesr.models.reparam`) and saved folded.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...ops.bicubic_graph import BicubicUpscale
from ..registry import register_student
from ..srnet import SRNet

ANCHORS = ("repeat", "bicubic")


class LRPlain(SRNet):
    input_kind = "lr"

    def __init__(self, scale: int, width: int, depth: int, anchor: str = "repeat") -> None:
        super().__init__()
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
        self.scale, self.width, self.depth, self.anchor_kind = scale, width, depth, anchor
        self.head = nn.Conv2d(1, width, 3, padding=1)
        self.body = nn.Sequential(*(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
                                    for _ in range(depth - 2)))
        self.tail = nn.Conv2d(width, scale * scale, 3, padding=1)
        self.bicubic = BicubicUpscale(scale) if anchor == "bicubic" else None
        for conv in self.convs()[:-1]:
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (9 * conv.out_channels)))
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def convs(self) -> list[nn.Module]:
        return [self.head, *(block[0] for block in self.body), self.tail]

    def anchor(self, x: torch.Tensor) -> torch.Tensor:
        # repeat: one channel, broadcast over the s*s phases by the addition
        return x if self.bicubic is None else self.bicubic.phases(x)

    splits_at_body = True
    relu_chain = True

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.head(x))

    def end(self, features: torch.Tensor) -> torch.Tensor:
        return self.tail(features)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.end(self.body(self.stem(x)))

    def assemble(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(y, self.scale)

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "scale": self.scale, "width": self.width, "depth": self.depth,
                "anchor": self.anchor_kind}

    @property
    def radius(self) -> int:
        return self.depth + (2 if self.bicubic is not None else 0)


def _build(scale: int, width: int, depth: int, anchor: str) -> LRPlain:
    return LRPlain(scale, width, depth, anchor)


register_student("lr-plain", input_kind="lr", width=32, depth=12, anchors=ANCHORS,
                 summary="plain 3x3 convs at LR, one pixel shuffle; anchor repeat (INT8-exact) or bicubic")(_build)
register_student("lr-rep", input_kind="lr", width=32, depth=12, anchors=ANCHORS, reparam=4,
                 summary="lr-plain trained over-parameterised (3x3 + expanded linear block per conv), "
                         "saved folded: same inference cost")(_build)
