"""Training-time over-parameterisation of 3x3 convs, folded back before anything is saved.

Each 3x3 conv is trained as the sum of itself and an expanded linear block (a 3x3 conv to
``expand`` times its output channels, then a 1x1 projection back, as in SESR), with nothing
non-linear inside: the sum *is* one 3x3 conv, so the inference network is unchanged. The
product of the two factors changes how gradient descent moves the weights (the effective step
of each conv is preconditioned by the other factor), which is what over-parameterisation is for.

Because every branch is linear and there is no normalisation inside, the fold is exact at every
step, not only after training: :class:`RepConv2d` folds its weights on each forward pass and runs
one conv (the product of two small weight tensors costs next to nothing), so training costs what
the plain network costs. :meth:`RepConv2d.branches` runs the branches one by one, for the test
that the fold is exact. The projection starts at zero, so a network converted with
:func:`overparameterise` starts as exactly the network it was (a refitted student stays refitted).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F


class RepConv2d(nn.Module):
    """A 3x3 conv (stride 1, padding 1) trained as ``conv + project(expand(.))``."""

    def __init__(self, conv: nn.Conv2d, expand: int) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.groups != 1:
            raise ValueError("only 3x3 convs of stride 1, padding 1 and one group are over-parameterised")
        if expand < 1:
            raise ValueError(f"expand must be >= 1, got {expand}")
        out_ch, in_ch = conv.out_channels, conv.in_channels
        hidden = expand * out_ch
        self.in_channels, self.out_channels = in_ch, out_ch
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if conv.bias is not None else None
        self.expand = nn.Parameter(torch.randn(hidden, in_ch, 3, 3, device=conv.weight.device) / hidden ** 0.5)
        self.project = nn.Parameter(torch.zeros(out_ch, hidden, device=conv.weight.device))

    def folded_weight(self) -> torch.Tensor:
        """The one conv's weight, in float32 whatever autocast does (the fold is exact arithmetic
        on the master weights; the conv itself may then run in bf16)."""
        with torch.autocast(self.weight.device.type, enabled=False):
            hidden = self.expand.shape[0]
            return self.weight + (self.project @ self.expand.reshape(hidden, -1)).view_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.folded_weight(), self.bias, padding=1)

    def branches(self, x: torch.Tensor) -> torch.Tensor:
        """The same output computed branch by branch (no folding): the reference of the fold."""
        base = F.conv2d(x, self.weight, self.bias, padding=1)
        hidden = F.conv2d(x, self.expand, padding=1)
        return base + F.conv2d(hidden, self.project[:, :, None, None])

    @torch.no_grad()
    def fold(self) -> nn.Conv2d:
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, padding=1, bias=self.bias is not None)
        conv = conv.to(self.weight.device)
        conv.weight.copy_(self.folded_weight())
        if self.bias is not None:
            conv.bias.copy_(self.bias)
        return conv


def replace_module(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` where ``old`` is registered inside ``root`` (every place it is)."""
    found = False
    for parent in list(root.modules()):  # a snapshot: ``new`` may hold ``old`` itself
        for name, child in list(parent.named_children()):
            if child is old:
                setattr(parent, name, new)
                found = True
    if not found:
        raise ValueError("module not found in the network")


def overparameterise(net: nn.Module, expand: int) -> nn.Module:
    """``net`` (changed in place and returned) with each of its ``convs()`` a :class:`RepConv2d`
    that starts equal to it."""
    for conv in net.convs():
        replace_module(net, conv, RepConv2d(conv, expand))
    return net


def folded(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with every :class:`RepConv2d` replaced by the plain conv it equals (the
    network itself when it has none)."""
    if not any(isinstance(m, RepConv2d) for m in net.modules()):
        return net
    out = copy.deepcopy(net)
    for conv in [m for m in out.modules() if isinstance(m, RepConv2d)]:
        replace_module(out, conv, conv.fold())
    return out


@torch.no_grad()
def load_plain(net: nn.Module, plain: nn.Module) -> None:
    """Give ``net`` the weights of ``plain``, the same network without over-parameterisation
    (conv for conv, in ``convs()`` order): each :class:`RepConv2d` takes them as its base and
    its projection is zeroed, so ``net`` then computes exactly what ``plain`` does."""
    mine, theirs = net.convs(), plain.convs()
    if len(mine) != len(theirs):
        raise ValueError(f"{len(theirs)} convs cannot be loaded into {len(mine)}")
    for dst, src in zip(mine, theirs):
        dst.weight.copy_(src.weight)
        if dst.bias is not None or src.bias is not None:
            dst.bias.copy_(src.bias)
        if isinstance(dst, RepConv2d):
            dst.project.zero_()
