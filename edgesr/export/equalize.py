"""Cross-layer range equalization before INT8 (Nagel et al. 2019, "Data-free quantization").

Activations are quantized per tensor: one step size for all the channels of a conv's output,
fixed by the channel that reaches furthest. A channel whose values stay in a tenth of that range
is left with a tenth of the 256 levels. Because ReLU is positively homogeneous, multiplying a
conv's output channel by ``s > 0`` (its weights and bias) and dividing the next conv's input
channel by ``s`` computes the same function, so each channel can be stretched towards the
tensor's range before quantizing: more levels for the small channels, the same output in float.

The stretch is ``(R / r_c) ** strength`` for a channel of range ``r_c`` in a tensor of range
``R``, measured on the calibration samples (data-free like the rest of the INT8 path), and
capped, since the next conv's weights shrink by the same factor and are quantized too (per
output channel, so a shrunken input channel loses weight precision).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..models.reparam import folded
from ..models.srnet import SRNet

#: the largest stretch of any channel
MAX_STRETCH = 16.0


@torch.no_grad()
def channel_ranges(net: SRNet, inputs: np.ndarray, batch: int = 16) -> list[torch.Tensor]:
    """The largest post-ReLU value of each channel of every conv but the last, on ``inputs``."""
    convs = net.convs()[:-1]
    ranges = [torch.zeros(c.out_channels) for c in convs]

    def hook(i: int):
        def record(module, args, out):
            ranges[i] = torch.maximum(ranges[i], out.float().clamp_min(0).amax(dim=(0, 2, 3)))
        return record

    handles = [c.register_forward_hook(hook(i)) for i, c in enumerate(convs)]
    try:
        for i in range(0, len(inputs), batch):
            net(torch.from_numpy(np.ascontiguousarray(inputs[i : i + batch])).float())
    finally:
        for h in handles:
            h.remove()
    return ranges


@torch.no_grad()
def equalized(net: SRNet, inputs: np.ndarray, strength: float = 1.0) -> SRNet:
    """A copy of ``net`` (which must be a ReLU chain: :attr:`SRNet.relu_chain`) whose ReLU
    outputs are stretched towards each tensor's range; the same function in float."""
    if not getattr(net, "relu_chain", False):
        raise ValueError(f"{type(net).__name__} is not a chain of conv + ReLU: its channels cannot be rescaled")
    out = copy.deepcopy(folded(net)).eval()
    if strength <= 0:
        return out
    convs = out.convs()
    for conv, nxt, r in zip(convs[:-1], convs[1:], channel_ranges(out, inputs)):
        alive = r > 0
        if not alive.any():
            continue
        stretch = torch.ones_like(r)
        stretch[alive] = (r.max() / r[alive]).pow(strength).clamp(max=MAX_STRETCH)
        conv.weight.mul_(stretch.view(-1, 1, 1, 1))
        if conv.bias is not None:
            conv.bias.mul_(stretch)
        nxt.weight.div_(stretch.view(1, -1, 1, 1))
    return out
