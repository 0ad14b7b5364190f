"""The training pool of a data-free run: procedural images drawn once, degraded at every scale
by the benchmarks' MATLAB pipeline, with the teacher's outputs on them computed once.

On a CPU the teacher's forward pass costs more than the student's forward and backward together
(four times the multiply-adds of the half-width student), so computing it once per sample
instead of once per step leaves most of a small budget to the student. Random crops of the pool
images, and the eight symmetries of the square applied alike to a crop and to its cached
target, multiply what a pool of a few dozen images offers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..ops.resize_torch import imresize
from .priors import prior_images


def degrade(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr, network input)`` of HR Y images ``(N, 1, H, W)``: MATLAB bicubic down by
    ``scale``, then up again and clamped to [0, 1], as the benchmarks make their inputs."""
    lr = imresize(hr, 1.0 / scale)
    return lr, imresize(lr, float(scale)).clamp(0, 1)


def augment(x: torch.Tensor, k: int) -> torch.Tensor:
    """Symmetry ``k`` (0..7) of the square: ``k % 4`` quarter turns, then a mirror if ``k >= 4``."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


@dataclass
class SamplePool:
    """Network inputs of every scale (``(N, 1, H, W)``, the scale of each in ``scales``) and the
    teacher's outputs on them; :meth:`batch` draws random crops with torch's global RNG, so a
    checkpointed run draws the same batches after a resume."""

    inputs: torch.Tensor
    targets: torch.Tensor
    scales: torch.Tensor

    @staticmethod
    def inputs_for(priors: Sequence[str], weights: Sequence[float], images: int, size: int,
                   scales: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool's network inputs and their scales: ``images`` prior images, each degraded at
        every scale (so the scales see the same content)."""
        hr = torch.from_numpy(prior_images(priors, weights, images, size, seed))[:, None]
        inputs = torch.cat([degrade(hr, s)[1] for s in scales])
        return inputs, torch.tensor([s for s in scales for _ in range(len(hr))])

    def batch(self, n: int, patch: int, symmetries: bool = True,
              rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random ``patch``-square crops of random pool images and the same crops of their
        targets, under one random symmetry of the square; of those, the ``rows`` (a training
        process's share: the draws are those of all ``n``)."""
        size = self.inputs.shape[-1]
        idx = torch.randint(len(self.inputs), (n,))[rows]
        top, left = (int(v) for v in torch.randint(size - patch + 1, (2,)))
        k = int(torch.randint(8, (1,))) if symmetries else 0
        window = (slice(None), slice(None), slice(top, top + patch), slice(left, left + patch))
        idx = idx.to(self.inputs.device)
        return augment(self.inputs[idx][window], k), augment(self.targets[idx][window], k)
