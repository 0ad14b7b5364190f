"""What every network edgesr trains, exports and evaluates is: :class:`SRNet`.

A super-resolution network here is a fixed *anchor* (a function of the input with no weights:
the input itself for VDSR, the LR image repeated or bicubic phases for an LR-space network)
plus a learned *residual*, both at the resolution the network ends at, then an *assemble* step
(identity, or the pixel shuffle that interleaves ``s*s`` LR phases into the HR image).

Everything downstream talks to this interface only: export runs the residual in FP16 while the
anchor stays float32, INT8 keeps chosen convs (``convs()``, in graph order) in float, QAD
swaps them for fake-quantized ones, tiling reads the receptive radius, and a saved file rebuilds
the network from ``config()``. Nothing downstream asks which family a network is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class SRNet(nn.Module):
    """Base of every SR network: ``forward(x) = assemble(anchor(x) + residual(x))``."""

    #: the registry name it was built under ("" for a network made directly, e.g. a teacher)
    arch: str = ""
    #: what it takes: ``bicubic`` (the MATLAB-bicubic upscaled Y: works at the output
    #: resolution, any scale) or ``lr`` (the LR Y itself: built for one scale)
    input_kind: str = "bicubic"
    #: the one scale an ``lr`` network upscales by (None: any)
    scale: int | None = None

    def anchor(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed part, before :meth:`assemble`."""
        return x

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The learned branch, before :meth:`assemble`; export may run it in another precision."""
        raise NotImplementedError

    def assemble(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.assemble(self.anchor(x) + self.residual(x))

    #: whether :meth:`residual` is ``end(body(stem(x)))`` with a module ``body`` that networks of
    #: other scales can share in training (:class:`ScaleSet` with ``shared_body``)
    splits_at_body: bool = False

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch up to its shareable body (families with ``splits_at_body``)."""
        raise NotImplementedError

    def end(self, features: torch.Tensor) -> torch.Tensor:
        """The residual branch after its shareable body (families with ``splits_at_body``)."""
        raise NotImplementedError

    #: whether :meth:`convs` is a chain, each conv but the last followed by a ReLU and feeding
    #: only the next: INT8 export may then rescale the channels between two convs
    #: (:mod:`edgesr.export.equalize`)
    relu_chain: bool = False

    def convs(self) -> list[nn.Module]:
        """The learned convs in graph order: what INT8 ``float_layers`` indices count."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """What rebuilds this network's inference form through the registry (saved with its weights)."""
        raise NotImplementedError

    @property
    def radius(self) -> int:
        """How many input pixels away an output pixel's value can come from (its receptive
        radius, in input pixels): tiles need at least that much context."""
        return len(self.convs())


class ScaleSet(nn.Module):
    """One LR-space network per scale, trained together: a step runs every scale's network on
    its own batch (``forward(*xs)``, one input per scale in ``scales`` order), so that under
    DDP every parameter takes part in each backward. Saved as one file per scale.

    With ``shared_body`` the networks train one body between them (MDSR's multi-scale
    training): each scale keeps its own first and last convs and anchor, the body learns from
    every scale's crops, and the crops go through it as one batch, which a CPU runs faster than
    three small ones. Each scale's saved network holds a copy of the body, so nothing
    downstream differs."""

    input_kind = "lr"

    def __init__(self, nets: dict[int, SRNet], shared_body: bool = False) -> None:
        super().__init__()
        self.scales = sorted(nets)
        self.nets = nn.ModuleDict({f"x{s}": nets[s] for s in self.scales})
        self.shared_body = shared_body
        if shared_body:
            first = self.for_scale(self.scales[0])
            shape = [p.shape for p in first.body.parameters()] if first.splits_at_body else None
            for s in self.scales[1:]:
                net = self.for_scale(s)
                if not net.splits_at_body or [p.shape for p in net.body.parameters()] != shape:
                    raise ValueError("a shared body needs networks whose bodies have the same shape at every scale")
                net.body = first.body

    def for_scale(self, scale: int) -> SRNet:
        return self.nets[f"x{scale}"]

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        nets = [self.for_scale(s) for s in self.scales]
        if not self.shared_body or len({x.shape[1:] for x in xs}) != 1:
            return tuple(net(x) for net, x in zip(nets, xs))
        features = nets[0].body(torch.cat([net.stem(x) for net, x in zip(nets, xs)]))
        return tuple(net.assemble(net.anchor(x) + net.end(f))
                     for net, x, f in zip(nets, xs, features.split([len(x) for x in xs])))


def net_for(model: nn.Module, scale: int) -> nn.Module:
    """The network that upscales by ``scale``: the scale's own in a :class:`ScaleSet`, else the model."""
    return model.for_scale(scale) if isinstance(model, ScaleSet) else model
