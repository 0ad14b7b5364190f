"""MATLAB-compatible bicubic ``imresize`` in torch: batched, differentiable, any device.

The generators of data-free distillation are trained *through* this resize (``x = up_s(G(z))``
and ``L_R = |down_s(T(x)) - G(z)|``), so it must pass gradients; rounding it to 8 bits, as the
DFSR reference does, silently cuts every generator loss off from the generator. The weights
and tap indices come from :func:`edgesr.ops.resize.contributions`, the one source of truth.
"""

from __future__ import annotations

from functools import cache

import torch

from .resize import contributions, plan


@cache  # one copy per device and dtype
def _taps(n_in: int, n_out: int, scale: float, device: torch.device, dtype: torch.dtype
          ) -> tuple[torch.Tensor, torch.Tensor]:
    weights, indices = contributions(n_in, n_out, scale)
    return torch.tensor(weights, dtype=dtype, device=device), torch.tensor(indices, dtype=torch.long, device=device)


def imresize(x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None
             ) -> torch.Tensor:
    """Resize the last two axes of ``x`` like MATLAB ``imresize(x, scale, 'bicubic')``.

    Any leading shape (``N, C, H, W`` or ``H, W``). Computes in ``x``'s floating dtype;
    bf16/fp16 inputs are resized in float32 and cast back, since the antialiasing taps of a
    x4 shrink are too small for half precision.
    """
    out_dtype = x.dtype
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    for axis, n_in, n_out, s in plan(tuple(work.shape[-2:]), scale, size):
        weights, indices = _taps(n_in, n_out, s, work.device, work.dtype)
        dim = work.ndim - 2 + axis
        gathered = work.index_select(dim, indices.reshape(-1)).unflatten(dim, indices.shape)
        # (out, taps) weights against the gathered (..., out, taps, trailing axes) taps
        w = weights.reshape(weights.shape + (1,) * (work.ndim - 1 - dim))
        work = (gathered * w).sum(dim=dim + 1)
    return work.to(out_dtype)
