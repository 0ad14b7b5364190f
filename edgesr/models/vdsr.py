"""VDSR (Kim et al., CVPR 2016) with an explicit head / body / tail split.

The split is what progressive distillation needs: stage k of a student is the same network
with fewer body blocks, and stage k+1 appends blocks just before the tail. The teacher and the
half-width student are the same class with a different width.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .srnet import SRNet

TEACHER_WIDTH = 64
STUDENT_WIDTH = 32
DEPTH = 20  # conv layers: head + 18 body blocks + tail


class Block(nn.Module):
    """conv3x3 (no bias) + ReLU. Not in-place, so a forward hook sees the post-ReLU output."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class VDSR(SRNet):
    """``out = x + tail(body(relu(head(x))))`` on the bicubic-upscaled Y channel in [0, 1].

    ``blocks`` is the number of body blocks actually built (``depth - 2`` for the full
    network; fewer for an early progressive stage).
    """

    def __init__(self, width: int = TEACHER_WIDTH, depth: int = DEPTH, blocks: int | None = None) -> None:
        super().__init__()
        if depth < 3:
            raise ValueError("VDSR needs at least 3 conv layers (head, one block, tail)")
        self.width = width
        self.depth = depth
        n = depth - 2 if blocks is None else blocks
        if not 0 <= n <= depth - 2:
            raise ValueError(f"blocks must be in [0, {depth - 2}], got {n}")
        self.head = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.body = nn.Sequential(*(Block(width) for _ in range(n)))
        self.tail = nn.Conv2d(width, 1, 3, padding=1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """VDSR's He init, N(0, sqrt(2 / (9 C_out))).

        PyTorch's default conv init shrinks activations ~2.4x per layer; after 19 layers the
        residual is ~1e-8 and a student never leaves bicubic quality.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))

    @property
    def blocks(self) -> int:
        return len(self.body)

    relu_chain = True

    def convs(self) -> list[nn.Module]:
        """The convs in graph order (head, body blocks, tail): what ``float_layers`` indices count."""
        return [self.head, *(b.conv for b in self.body), self.tail]

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(torch.relu(self.head(x))))

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "width": self.width, "depth": self.depth}

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output and every body block's (post-ReLU) output, for feature-level losses."""
        h = torch.relu(self.head(x))
        feats = []
        for block in self.body:
            h = block(h)
            feats.append(h)
        return x + self.tail(h), feats

    def grown(self, blocks: int) -> VDSR:
        """A copy with ``blocks`` body blocks; existing weights carried over exactly.

        The new blocks go just before the tail (paper sec. 3.1). The set of parameter names the
        copy did *not* inherit is checked to be exactly the new blocks', so a renamed layer can
        never be left silently at its random init.
        """
        if blocks < self.blocks:
            raise ValueError(f"cannot shrink from {self.blocks} to {blocks} blocks")
        new = VDSR(self.width, self.depth, blocks).to(next(self.parameters()).device)
        new.arch = self.arch
        missing, unexpected = new.load_state_dict(self.state_dict(), strict=False)
        expected_new = {f"body.{i}.conv.weight" for i in range(self.blocks, blocks)}
        if unexpected or set(missing) != expected_new:
            raise RuntimeError(
                f"stage growth mismatch: new keys {sorted(missing)}, expected {sorted(expected_new)}, "
                f"unexpected {sorted(unexpected)}"
            )
        return new


def teacher_arch() -> VDSR:
    """The 64-channel, 20-layer VDSR of the paper's teacher (664,704 parameters)."""
    return VDSR(TEACHER_WIDTH, DEPTH)


def student_arch() -> VDSR:
    """VDSR-half: 32 channels, 20 layers (166,464 parameters)."""
    return VDSR(STUDENT_WIDTH, DEPTH)
