"""Training patches for supervised SR, sampled on the training device with one gather per batch.

Every training image is degraded once, whole, with the MATLAB pipeline of the benchmarks
(per-scale modcrop, ``imresize(1/s)`` then ``imresize(s)``), so a patch's bicubic input is
exactly what the network meets at test time, border effects included; cropping patches first
and degrading them would put the resize's reflected borders inside every patch. The HR images
and their bicubic versions live flat in device memory (no padding), and a batch of random
crops, each with its own image, scale and square symmetry, is a single index gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.images import read_rgb8
from ..errors import EdgesrError
from ..ops import image_to_y
from ..ops.resize_torch import imresize


def read_y(paths: Sequence[Path]) -> list[np.ndarray]:
    """Y in [0, 1] (MATLAB ``rgb2ycbcr``; grayscale taken as Y) of each image file."""
    return [image_to_y(read_rgb8(p)) for p in paths]


class PatchSampler:
    """Random aligned (bicubic, HR) patch pairs from a set of Y images, on ``device``."""

    def __init__(self, images: Sequence[np.ndarray], scales: Sequence[int], size: int,
                 device: torch.device, augment: bool = True, downsizes: Sequence[float] = (1.0,)) -> None:
        self.scales = list(scales)
        self.size = size
        self.augment = augment
        self.device = device
        # float64 where the device has it: the resize's antialiasing taps are small
        dtype = torch.float32 if device.type == "mps" else torch.float64
        hr_flat, bic_flat, shapes, dropped = [], [], [], 0
        for y in images:
            base = torch.as_tensor(np.asarray(y), dtype=dtype, device=device)
            for d in downsizes:
                hr = base if d == 1 else imresize(base, d)
                h, w = hr.shape
                if min(h - h % s for s in self.scales) < size or min(w - w % s for s in self.scales) < size:
                    dropped += 1
                    continue
                bic = torch.zeros((len(self.scales), h, w), dtype=torch.float32, device=device)
                for i, s in enumerate(self.scales):
                    hs, ws = h - h % s, w - w % s
                    bic[i, :hs, :ws] = imresize(imresize(hr[:hs, :ws], 1.0 / s), float(s)).float()
                hr_flat.append(hr.float().reshape(-1))
                bic_flat.append(bic.reshape(len(self.scales), -1))
                shapes.append((h, w))
        if not shapes:
            raise EdgesrError(f"every training image is smaller than the {size}x{size} patch (patches.size)")
        self.dropped = dropped
        self.hr = torch.cat(hr_flat)
        self.bic = torch.cat(bic_flat, dim=1)
        hw = torch.tensor(shapes, dtype=torch.long, device=device)
        self.heights, self.widths = hw[:, 0], hw[:, 1]
        sizes = self.heights * self.widths
        self.offsets = torch.cumsum(sizes, 0) - sizes
        #: images are drawn in proportion to their area, as if patches tiled every image
        self.weights = sizes.double() / sizes.sum()
        scale_t = torch.tensor(self.scales, dtype=torch.long, device=device)
        #: per (scale, image): how far a patch may start and stay inside the modcropped image
        self.room_h = self.heights[None] - self.heights[None] % scale_t[:, None] - size + 1
        self.room_w = self.widths[None] - self.widths[None] % scale_t[:, None] - size + 1

    @property
    def images(self) -> int:
        return len(self.offsets)

    def sample(self, n: int, rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bicubic, hr)`` batches of shape ``(n, 1, size, size)``, float32: the places of
        ``n`` patches are drawn, the patches of ``rows`` cut (a training process's share)."""
        dev = self.device
        image = torch.multinomial(self.weights, n, replacement=True)
        scale = torch.randint(len(self.scales), (n,), device=dev)
        top = (torch.rand(n, device=dev, dtype=torch.float64) * self.room_h[scale, image]).long()
        left = (torch.rand(n, device=dev, dtype=torch.float64) * self.room_w[scale, image]).long()
        sym = torch.randint(8, (n,), device=dev) if self.augment else torch.zeros(n, dtype=torch.long, device=dev)
        return self.crop(image[rows], scale[rows], top[rows], left[rows], sym[rows])

    def crop(self, image: torch.Tensor, scale: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
             sym: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The patches at the given places; ``sym`` picks a symmetry: bit 1 flips rows, bit 2
        flips columns, bit 0 then transposes. Folding it into the gather indices costs nothing."""
        p = self.size
        ar = torch.arange(p, device=self.device)
        rows, cols = ar.view(1, p, 1), ar.view(1, 1, p)
        transpose = (sym & 1).bool().view(-1, 1, 1)
        r = torch.where(transpose, cols, rows)
        c = torch.where(transpose, rows, cols)
        r = torch.where((sym & 2).bool().view(-1, 1, 1), p - 1 - r, r)
        c = torch.where((sym & 4).bool().view(-1, 1, 1), p - 1 - c, c)
        idx = (self.offsets[image].view(-1, 1, 1) + (top.view(-1, 1, 1) + r) * self.widths[image].view(-1, 1, 1)
               + left.view(-1, 1, 1) + c)
        hr = self.hr[idx]
        bic = self.bic[scale.view(-1, 1, 1), idx]
        return bic.unsqueeze(1), hr.unsqueeze(1)
