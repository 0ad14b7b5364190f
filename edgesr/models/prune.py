"""Initialise a narrower VDSR from a wider one by keeping each layer's strongest channels.

A random student must first learn what the teacher already knows; a student that starts as the
teacher restricted to its ``width`` most important channels per layer (L1 norm of the output
filters, Li et al. 2017) starts far above bicubic, which matters under a small time budget.
"""

from __future__ import annotations

import torch

from .vdsr import VDSR


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

    def top(weight: torch.Tensor) -> torch.Tensor:
        return torch.argsort(weight.abs().sum(dim=(1, 2, 3)), descending=True)[:width].sort().values

    keep = top(teacher.head.weight)
    student.head.weight.copy_(teacher.head.weight[keep])
    for i in range(n_blocks):
        w = teacher.body[i].conv.weight[:, keep]
        nxt = top(w)
        student.body[i].conv.weight.copy_(w[nxt])
        keep = nxt
    student.tail.weight.copy_(teacher.tail.weight[:, keep])
    return student
