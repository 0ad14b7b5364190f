"""MATLAB's bicubic upscaling by an integer factor as a tiny conv graph, for any input size.

For an integer scale ``s`` MATLAB's ``imresize`` is a fixed polyphase filter: output pixel
``s*k + r`` is a 4-tap combination of input pixels around ``k`` whose weights depend only on
the phase ``r``. Borders use symmetric (edge-including) reflection, so padding the input that
way and running the same filter everywhere reproduces MATLAB on every pixel, borders included.

The graph is: mirror-pad (Slice + Concat: ONNX ``Pad`` has no MATLAB-symmetric mode), one
``Conv`` with ``s*s`` output channels (the outer products of the per-axis phase filters), and
``DepthToSpace`` (``pixel_shuffle``) to interleave the phases. onnxruntime, TensorRT and CoreML
all run these ops, and the graph keeps a dynamic height and width. The phase weights are read
from :func:`edgesr.ops.resize.contributions`, the single source of the bicubic weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .resize import contributions

#: length of the axis used to read off the phase filters; long enough to have interior pixels
_PROBE = 16


def phase_filters(scale: int) -> tuple[np.ndarray, int, int]:
    """``(filters, pad_before, pad_after)``: ``filters[r]`` weights input offsets ``-pad_before..pad_after``.

    Read from MATLAB's contributions on an interior stretch of a probe axis, and checked to be
    the same for every interior pixel of a phase (i.e. that the resize really is polyphase).
    """
    if scale < 2 or int(scale) != scale:
        raise ValueError(f"the in-graph bicubic needs an integer scale >= 2, got {scale}")
    weights, indices = contributions(_PROBE, _PROBE * scale, float(scale))
    reach = weights.shape[1]
    dense = np.zeros((scale, 2 * reach + 1))  # offsets -reach..reach around k
    for t in range(4 * scale, (_PROBE - 4) * scale):  # interior: no mirrored taps
        k, r = divmod(t, scale)
        row = np.zeros(2 * reach + 1)
        np.add.at(row, indices[t] - k + reach, weights[t])
        if t < 5 * scale:
            dense[r] = row
        elif not np.allclose(dense[r], row, rtol=0, atol=1e-12):
            raise AssertionError(f"x{scale} bicubic is not polyphase at output {t}")
    used = np.flatnonzero(np.any(np.abs(dense) > 1e-12, axis=0))
    lo, hi = reach - int(used[0]), int(used[-1]) - reach
    filters = dense[:, used[0] : used[-1] + 1]
    return filters, lo, hi


def _mirror_pad(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """MATLAB's symmetric padding (``[x1 x0 | x0 x1 ... xn | xn xn-1]``) from single slices."""
    def take(start: int, stop: int | None) -> torch.Tensor:
        # constant (negative) slice bounds: CoreML's converter rejects symbolic ones
        return x[(slice(None),) * dim + (slice(start, stop),)]

    left = [take(j, j + 1) for j in range(before - 1, -1, -1)]
    right = [take(-1 - j, -j or None) for j in range(after)]
    return torch.cat(left + [x] + right, dim=dim)


class BicubicUpscale(nn.Module):
    """``imresize(x, s, 'bicubic')`` on ``N x 1 x H x W`` in float32; exact on every pixel.

    Needs ``H, W >= max(pad)`` (2 for x2-x4): smaller inputs would mirror more than once.
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        filters, self.before, self.after = phase_filters(scale)
        self.scale = scale
        kernel = np.einsum("ai,bj->abij", filters, filters).reshape(scale * scale, 1, *filters.shape[1:] * 2)
        self.register_buffer("weight", torch.tensor(kernel, dtype=torch.float32))

    def phases(self, x: torch.Tensor) -> torch.Tensor:
        """The ``s*s`` output phases at the input's resolution, before they are interleaved:
        what an LR-space network adds its own ``s*s`` channels to (its bicubic anchor)."""
        x = _mirror_pad(_mirror_pad(x, 2, self.before, self.after), 3, self.before, self.after)
        return F.conv2d(x, self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.phases(x), self.scale)
