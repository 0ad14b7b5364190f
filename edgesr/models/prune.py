"""Initialise a narrower VDSR from a wider one by keeping each layer's strongest channels.

A random student must first learn what the teacher already knows; a student that starts as the
teacher restricted to its ``width`` most important channels per layer (L1 norm of the output
filters, Li et al. 2017) keeps the teacher's filters. Its output, though, collapses to the skip
path (it starts at bicubic quality): :mod:`edgesr.models.refit` repairs that in closed form.
"""

from __future__ import annotations

import torch

from .vdsr import VDSR


def strongest_channels(weight: torch.Tensor, width: int) -> torch.Tensor:
    """Indices (ascending) of the ``width`` output filters of ``weight`` with the largest L1 norm."""
    return torch.argsort(weight.abs().sum(dim=(1, 2, 3)), descending=True)[:width].sort().values


@torch.no_grad()
def prune_to_width(teacher: VDSR, width: int, blocks: int | None = None) -> VDSR:
    """A ``width``-channel VDSR whose weights are a channel subset of ``teacher``'s.

    With ``blocks`` fewer than the teacher's, the first ``blocks`` body blocks are kept (the
    early stage of a progressive student).
    """
    if width > teacher.width:
        raise ValueError(f"cannot prune {teacher.width} channels to {width}")
    n_blocks = teacher.blocks if blocks is None else blocks
    student = VDSR(width, teacher.depth, n_blocks).to(teacher.head.weight.device)
    keep = strongest_channels(teacher.head.weight, width)
    student.head.weight.copy_(teacher.head.weight[keep])
    for i in range(n_blocks):
        w = teacher.body[i].conv.weight[:, keep]
        keep = strongest_channels(w, width)
        student.body[i].conv.weight.copy_(w[keep])
    student.tail.weight.copy_(teacher.tail.weight[:, keep])
    return student
