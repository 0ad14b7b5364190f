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

    With ``shared_body`` the networks whose bodies have the same shape train one body between
    them (MDSR's multi-scale training): each scale keeps its own first and last convs and
    anchor, the body learns from the crops of every scale that shares it, and those crops go
    through it as one batch, which a CPU runs faster than several small ones. Scales of another
    width or depth form their own group, so a recipe can give x3/x4 a wider body than x2 and
    still share. Each scale's saved network holds a copy of its body, so nothing downstream
    differs."""

    input_kind = "lr"

    def __init__(self, nets: dict[int, SRNet], shared_body: bool = False) -> None:
        super().__init__()
        self.scales = sorted(nets)
        self.nets = nn.ModuleDict({f"x{s}": nets[s] for s in self.scales})
        #: the scales that run one body, in ``scales`` order (each scale alone without sharing)
        self.groups: list[list[int]] = [[s] for s in self.scales]
        if shared_body:
            by_shape: dict[tuple, list[int]] = {}
            for s in self.scales:
                net = self.for_scale(s)
                if not net.splits_at_body:
                    raise ValueError(f"a shared body needs networks that split at their body; x{s} does not")
                by_shape.setdefault(tuple(p.shape for p in net.body.parameters()), []).append(s)
            self.groups = list(by_shape.values())
            for group in self.groups:
                for s in group[1:]:
                    self.for_scale(s).body = self.for_scale(group[0]).body

    def for_scale(self, scale: int) -> SRNet:
        return self.nets[f"x{scale}"]

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        given = dict(zip(self.scales, xs))
        out: dict[int, torch.Tensor] = {}
        for group in self.groups:
            nets, inputs = [self.for_scale(s) for s in group], [given[s] for s in group]
            if len(group) == 1 or len({x.shape[1:] for x in inputs}) != 1:
                out.update((s, net(x)) for s, net, x in zip(group, nets, inputs))
                continue
            features = nets[0].body(torch.cat([net.stem(x) for net, x in zip(nets, inputs)]))
            out.update((s, net.assemble(net.anchor(x) + net.end(f)))
                       for s, net, x, f in zip(group, nets, inputs, features.split([len(x) for x in inputs])))
        return tuple(out[s] for s in self.scales)


def net_for(model: nn.Module, scale: int) -> nn.Module:
    """The network that upscales by ``scale``: the scale's own in a :class:`ScaleSet`, else the model."""
    return model.for_scale(scale) if isinstance(model, ScaleSet) else model
