"""MATLAB-compatible ``imresize`` (bicubic, antialiased when shrinking), in NumPy.

The SR field's numbers are defined by MATLAB's ``imresize``; PIL, OpenCV and
``torch.nn.functional.interpolate`` differ from it by enough to cost ~1.5 dB against the
MATLAB-prepared references. This module is the single source of the resize *weights*
(:func:`contributions`); the torch version in :mod:`edgesr.ops.resize_torch` and the in-graph
ONNX version reuse them, so training, evaluation, export and the device side agree.

The NumPy application sums the taps in MATLAB's order, so in float64 it reproduces MATLAB
bit for bit.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

#: Support of the cubic kernel (Keys, a = -0.5), in input pixels.
CUBIC_WIDTH = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as MATLAB's ``imresize`` defines it."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def output_length(in_length: int, scale: float) -> int:
    """MATLAB's ``ceil(scale * in_length)``, robust to ``1/3``-style rounding in the product."""
    exact = in_length * scale
    nearest = round(exact)
    return int(nearest) if abs(exact - nearest) < 1e-9 else math.ceil(exact)


@lru_cache(maxsize=256)
def contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, the input indices (0-based) and weights of MATLAB's bicubic resize.

    Returns ``(weights, indices)``, both of shape ``(out_length, taps)``. Borders are handled
    by symmetric reflection (MATLAB's ``aux = [1:n, n:-1:1]``), and tap columns whose weight is
    zero for every output pixel are dropped, exactly as MATLAB does. Cached and read-only:
    callers share the arrays.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"cannot resize a length-{in_length} axis to length {out_length}")
    # antialiasing when shrinking: the kernel stretched to the output's sampling rate (k = 1: as it is)
    k = min(scale, 1.0)
    kernel_width = CUBIC_WIDTH / k
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = k * cubic(k * (u[:, None] - indices))
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, mirror.size)]
    keep = np.any(weights != 0, axis=0)
    weights, indices = np.ascontiguousarray(weights[:, keep]), np.ascontiguousarray(indices[:, keep])
    weights.setflags(write=False)
    indices.setflags(write=False)
    return weights, indices


def plan(shape: tuple[int, int], scale: float | None = None, size: tuple[int, int] | None = None
         ) -> list[tuple[int, int, int, float]]:
    """The MATLAB resize plan: ``(axis, in_length, out_length, axis_scale)`` per axis, in order.

    MATLAB resizes the axis with the smallest scale factor first (height first on ties);
    the order changes the float result, so every implementation follows this one plan.
    ``axis`` is 0 for height and 1 for width.
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    h, w = shape
    if size is None:
        scales = (float(scale), float(scale))
        size = (output_length(h, scales[0]), output_length(w, scales[1]))
    else:
        scales = (size[0] / h, size[1] / w)
    return [(a, shape[a], size[a], scales[a]) for a in sorted(range(2), key=lambda a: scales[a])]


def imresize(img: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None
             ) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` on the last two axes of a float array.

    Computes in float64 (as MATLAB does for ``double`` input) and returns float64; the caller
    decides about rounding. Leading axes (channels, batch) are resized independently.
    """
    out = np.asarray(img, dtype=np.float64)
    if out.ndim < 2:
        raise ValueError("imresize needs an array with at least two dimensions")
    for axis, n_in, n_out, s in plan(out.shape[-2:], scale, size):
        weights, indices = contributions(n_in, n_out, s)
        moved = np.moveaxis(out, out.ndim - 2 + axis, 0)
        acc = weights[:, 0].reshape((-1,) + (1,) * (moved.ndim - 1)) * moved[indices[:, 0]]
        for j in range(1, weights.shape[1]):  # MATLAB's tap order, for bit-exact sums
            acc = acc + weights[:, j].reshape((-1,) + (1,) * (moved.ndim - 1)) * moved[indices[:, j]]
        out = np.moveaxis(acc, 0, out.ndim - 2 + axis)
    return out
