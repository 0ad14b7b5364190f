"""The training pool of a data-free run: procedural images drawn once, degraded at every scale
by the benchmarks' MATLAB pipeline, with the teacher's outputs on them computed once.

On a CPU the teacher's forward pass costs more than the student's forward and backward together
(four times the multiply-adds of the half-width student), so computing it once per sample
instead of once per step leaves most of a small budget to the student. Random crops of the pool
images, and the eight symmetries of the square applied alike to a crop and to its cached
target, multiply what a pool of a few dozen images offers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..ops.resize_torch import imresize
from .priors import prior_images


def degrade(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr, network input)`` of HR Y images ``(N, 1, H, W)``: MATLAB bicubic down by
    ``scale``, then up again and clamped to [0, 1], as the benchmarks make their inputs."""
    lr = imresize(hr, 1.0 / scale)
    return lr, imresize(lr, float(scale)).clamp(0, 1)


#: the symmetries of the square (four quarter turns, each with or without a mirror): the pool's
#: random augmentations and the teacher's self-ensemble range over them
SQUARE_SYMMETRIES = 8


def augment(x: torch.Tensor, k: int) -> torch.Tensor:
    """Symmetry ``k`` (0..7) of the square: ``k % 4`` quarter turns, then a mirror if ``k >= 4``."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def unaugment(x: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`augment`: ``augment(x, k)`` back to ``x``."""
    x = torch.flip(x, dims=(-1,)) if k >= 4 else x
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def symmetry_average(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: int,
                     first: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of ``forward`` over the first ``views`` symmetries of the square, each mapped
    back (``first``: ``forward(x)`` where it is already known). As a pool's targets, a
    teacher's self-ensemble: nearer the ground truth than its single pass and, over all eight,
    equivariant, as a student trained under the same symmetries can be
    (``benchmarks/results/ablation_hour/teacher_views.json``)."""
    total = (forward(x) if first is None else first).float().clone()
    for k in range(1, views):
        total += unaugment(forward(augment(x, k)).float(), k)
    return total / views


@dataclass(frozen=True)
class PoolImages:
    """The pool's images before the teacher has seen them: the bicubic network inputs of every
    scale (``(N * len(scales), 1, H, W)``, scale-major, the scale of each row in ``scales``) and
    the LR images they were made from (``lr[s]``: ``(N, 1, H/s, W/s)``, in the same order)."""

    inputs: torch.Tensor
    scales: torch.Tensor
    lr: dict[int, torch.Tensor]

    @staticmethod
    def draw(priors: Sequence[str], weights: Sequence[float], images: int, size: int,
             scales: Sequence[int], seed: int) -> PoolImages:
        """``images`` prior images, each degraded at every scale (so the scales see the same content)."""
        hr = torch.from_numpy(prior_images(priors, weights, images, size, seed))[:, None]
        pairs = {s: degrade(hr, s) for s in scales}
        return PoolImages(torch.cat([pairs[s][1] for s in scales]),
                          torch.tensor([s for s in scales for _ in range(len(hr))]),
                          {s: pairs[s][0] for s in scales})


@dataclass
class SamplePool:
    """Network inputs of every scale (``(N, 1, H, W)``, the scale of each in ``scales``) and the
    teacher's outputs on them, and the LR images of each scale for LR-space students;
    :meth:`batch` and :meth:`lr_batch` draw random crops with torch's global RNG, so a
    checkpointed run draws the same batches after a resume."""

    inputs: torch.Tensor
    targets: torch.Tensor
    scales: torch.Tensor
    lr: dict[int, torch.Tensor] = field(default_factory=dict)
    #: how often :meth:`batch` draws each scale's rows, by scale (empty: every row alike)
    scale_weights: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._row_weights = None
        if self.scale_weights:  # a scale's weight spread over its rows (on the CPU, where the draws are made)
            scales = self.scales.cpu()
            per_row = torch.tensor([self.scale_weights[int(s)] for s in scales.unique()], dtype=torch.float64)
            _, which, counts = scales.unique(return_inverse=True, return_counts=True)
            self._row_weights = (per_row / counts)[which]

    def batch(self, n: int, patch: int, symmetries: bool = True,
              rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random ``patch``-square crops of random pool images (each scale's as often as
        ``scale_weights`` says) and the same crops of their targets, under one random symmetry
        of the square; of those, the ``rows`` (a training process's share: the draws are those
        of all ``n``)."""
        size = self.inputs.shape[-1]
        if self._row_weights is None:
            idx = torch.randint(len(self.inputs), (n,))[rows]
        else:
            idx = torch.multinomial(self._row_weights, n, replacement=True)[rows]
        top, left = (int(v) for v in torch.randint(size - patch + 1, (2,)))
        k = int(torch.randint(SQUARE_SYMMETRIES, (1,))) if symmetries else 0
        window = (slice(None), slice(None), slice(top, top + patch), slice(left, left + patch))
        idx = idx.to(self.inputs.device)
        return augment(self.inputs[idx][window], k), augment(self.targets[idx][window], k)

    def lr_batch(self, scale: int, n: int, patch: int, symmetries: bool = True,
                 rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random ``patch``-square crops of the LR images of ``scale`` and the
        ``patch * scale`` crops of the teacher's outputs they correspond to, under one random
        symmetry; of those, the ``rows``. What an LR-space student of that scale learns from."""
        lr = self.lr[scale]
        size = lr.shape[-1]
        first = int(torch.nonzero(self.scales == scale)[0])
        idx = torch.randint(len(lr), (n,))[rows]
        top, left = (int(v) for v in torch.randint(size - patch + 1, (2,)))
        k = int(torch.randint(SQUARE_SYMMETRIES, (1,))) if symmetries else 0
        idx = idx.to(lr.device)
        x = lr[idx][..., top: top + patch, left: left + patch]
        hr = slice(top * scale, (top + patch) * scale), slice(left * scale, (left + patch) * scale)
        y = self.targets[first + idx][(slice(None), slice(None), *hr)]
        return augment(x, k), augment(y, k)


#: the teacher's outputs on a run's pool, kept in its run folder so that a resume reads them
TARGETS_FILE = "pool_targets.safetensors"


def save_targets(run_dir: Path, key: str, targets: torch.Tensor) -> None:
    """Write the pool's teacher outputs (float32) with the ``key`` of the pool they belong to."""
    from safetensors.torch import save

    from ..io import write_bytes

    write_bytes(run_dir / TARGETS_FILE, save({"targets": targets.detach().float().cpu().contiguous()},
                                             metadata={"pool": key}))


def load_targets(run_dir: Path, key: str, shape: torch.Size) -> torch.Tensor | None:
    """The saved teacher outputs of the pool ``key`` if the run folder has them with that key,
    shape and finite values; None otherwise (they are then computed again)."""
    from safetensors import safe_open

    path = run_dir / TARGETS_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("pool") != key or list(f.keys()) != ["targets"]:
                return None
            if tuple(f.get_slice("targets").get_shape()) != tuple(shape):
                return None
            targets = f.get_tensor("targets")
    except Exception:  # a damaged or foreign file: recompute rather than trust it
        return None
    if targets.dtype != torch.float32 or not bool(torch.isfinite(targets).all()):
        return None
    return targets
