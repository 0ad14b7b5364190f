"""Contrastive Model Inversion (Fang et al. 2021) adapted to an SR teacher (paper sec. 3.2).

VDSR has no BatchNorm and no classes, so CMI's BN-statistics and class terms do not apply;
what remains is instance discrimination: the teacher's features of two augmented views of the
same generated image should be closer (through a learned projection head) than those of other
images, including past ones kept in a memory bank. Minimising that loss w.r.t. the generator
pushes each new batch away from everything generated before: diversity against mode collapse.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def pooled_features(block_outputs: list[torch.Tensor]) -> torch.Tensor:
    """Global-average-pooled block outputs, concatenated: ``(N, blocks * width)`` (1152 for VDSR)."""
    return torch.cat([f.float().mean(dim=(2, 3)) for f in block_outputs], dim=1)


def standardize(feats: torch.Tensor) -> torch.Tensor:
    """Each feature minus its mean over the rows, over its standard deviation (statistics held
    constant for the gradient).

    Pooled VDSR features are dominated by what every image shares: two different samples have
    cosine similarity ~0.997, so through the head every logit is within a few hundredths of
    the others and InfoNCE cannot tell samples apart. Standardised over the current batch and
    the bank negatives, what is left is what distinguishes them.
    """
    mean = feats.mean(dim=0, keepdim=True).detach()
    std = feats.std(dim=0, keepdim=True).detach()
    return (feats - mean) / (std + 1e-6)


class ProjectionHead(nn.Module):
    """h: Linear(D, D) -> ReLU -> Linear(D, out) -> L2-normalise (cosine similarity space)."""

    def __init__(self, in_dim: int, out_dim: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(), nn.Linear(in_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)


class MemoryBank:
    """FIFO store of past samples' teacher features (local || global), one per scale.

    The capacity is a multiple of the batch so that whole batches are written and the write
    pointer wraps exactly; CMI's reference has the same constraint.
    """

    def __init__(self, capacity: int, dim: int, batch: int, device: torch.device | str = "cpu") -> None:
        if capacity % batch:
            raise ValueError(f"bank capacity {capacity} is not a multiple of the batch size {batch}")
        self.data = torch.zeros(capacity, dim, device=device)
        self.batch = batch
        self.ptr = 0
        self.count = 0

    def add(self, feats: torch.Tensor) -> None:
        if feats.shape[0] != self.batch:
            raise ValueError(f"bank takes whole batches of {self.batch}, got {feats.shape[0]}")
        self.data[self.ptr : self.ptr + self.batch] = feats.detach().to(self.data)
        self.ptr = (self.ptr + self.batch) % self.data.shape[0]
        self.count = min(self.count + self.batch, self.data.shape[0])

    def sample(self, n: int) -> torch.Tensor:
        """Up to ``n`` stored entries, drawn without replacement."""
        if self.count == 0 or n <= 0:
            return self.data[:0]
        idx = torch.randperm(self.count, device="cpu")[:n].to(self.data.device)
        return self.data[idx]

    def state_dict(self) -> dict:
        return {"data": self.data.cpu(), "ptr": self.ptr, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.data.copy_(state["data"])
        self.ptr, self.count = int(state["ptr"]), int(state["count"])


def _affine_crops(x: torch.Tensor, scale_xy: torch.Tensor, shift_xy: torch.Tensor, flip: torch.Tensor
                  ) -> torch.Tensor:
    """Per-sample crop (normalised half-sizes ``scale_xy``, centres ``shift_xy``) + h-flip,
    resampled bilinearly to the input size; differentiable w.r.t. ``x``; zeros outside."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = scale_xy[:, 0] * torch.where(flip, -1.0, 1.0).to(x)
    theta[:, 1, 1] = scale_xy[:, 1]
    theta[:, :, 2] = shift_xy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_views(lr: torch.Tensor, pad: int, local_scale: tuple[float, float], total: int | None = None,
                 rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
    """CMI's two views of each LR image: global (flip + padded random crop) and local
    (random resized crop of ``local_scale`` area, aspect 3/4..4/3, + flip). No colour jitter:
    the SR teacher sees luma only. ``lr`` may be the ``rows`` of a batch of ``total`` images
    (a training process's share): the views of all are drawn, those of ``rows`` made."""
    n, _, h, w = lr.shape
    dev = lr.device

    def rand(*shape: int) -> torch.Tensor:  # uniform numbers of shape (n, *shape)
        return torch.rand(total or n, *shape)[rows].to(dev)

    # global: integer shifts in [-pad, pad] pixels, zero fill, same size
    shifts = torch.floor(rand(2) * (2 * pad + 1)) - pad
    shift_norm = shifts * 2 / torch.tensor([w, h], device=dev)
    glob = _affine_crops(lr, torch.ones(n, 2, device=dev), shift_norm, rand() < 0.5)
    # local: area fraction and aspect ratio, then a random position inside the image
    area = local_scale[0] + rand() * (local_scale[1] - local_scale[0])
    log_ratio = (rand() * 2 - 1) * math.log(4 / 3)
    ratio = torch.exp(log_ratio)
    half_w = torch.clamp(torch.sqrt(area * ratio), max=1.0)
    half_h = torch.clamp(torch.sqrt(area / ratio), max=1.0)
    centre = (rand(2) * 2 - 1) * torch.stack([1 - half_w, 1 - half_h], dim=1)
    local = _affine_crops(lr, torch.stack([half_w, half_h], dim=1), centre, rand() < 0.5)
    return glob, local


def info_nce(local_proj: torch.Tensor, global_proj: torch.Tensor, batch: int, temperature: float
             ) -> torch.Tensor:
    """Paper Eq. 12 with CMI's conventions.

    Rows are the current batch followed by bank entries; row i's positive is column i (the
    other view of the same sample), every other column a negative. Global-view embeddings are
    detached (they are targets). The batch's rows and the bank's rows are averaged separately
    and summed, so a large bank does not drown the generator's own term.
    """
    logits = local_proj @ global_proj.detach().t() / temperature
    labels = torch.arange(logits.shape[0], device=logits.device)
    per_row = F.cross_entropy(logits, labels, reduction="none")
    loss = per_row[:batch].mean()
    if per_row.shape[0] > batch:
        loss = loss + per_row[batch:].mean()
    return loss


@torch.no_grad()
def instance_accuracy(local_proj: torch.Tensor, global_proj: torch.Tensor, batch: int) -> torch.Tensor:
    """Top-1 instance discrimination of the current batch: the share of its samples whose local
    view is closest to their own global view among all rows (chance: 1 / rows)."""
    logits = local_proj[:batch] @ global_proj.t()
    return (logits.argmax(dim=1) == torch.arange(batch, device=logits.device)).float().mean()


def diversity(feats: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine distance of a batch's features: near 0 means collapsed samples."""
    z = F.normalize(feats.float(), dim=1)
    sim = z @ z.t()
    n = z.shape[0]
    return 1 - (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))
