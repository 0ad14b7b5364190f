"""MSE-optimal activation clipping: the calibration method onnxruntime does not have.

Percentile and min-max pick a range without looking at the grid it will be cut into. With
symmetric int8 on post-ReLU activations (TensorRT's explicit quantization: zero point 0), half
of the 256 codes are never used, so the step is twice the uint8 one and every bit of range
matters. Choosing the clip that minimises the expected squared error of clipping plus rounding
on the observed distribution (the "mse" calibrator of NVIDIA's quantization toolkits) trades
the two errors where they balance instead of at a fixed quantile.
"""

from __future__ import annotations

import numpy as np

#: clip candidates, evenly spaced up to the observed maximum
CANDIDATES = 512


def mse_threshold(hist: np.ndarray, edges: np.ndarray, levels: int, candidates: int = CANDIDATES) -> float:
    """The clip ``T`` minimising E[(|x| - Q(|x|))^2] for a histogram of ``|x|``.

    ``Q`` rounds to ``levels`` steps of ``T / levels`` above zero (127 for symmetric int8,
    255 for uint8 on non-negative values) and saturates at ``T``. Zero is on every grid, so
    the ReLU's zeros cost nothing whatever ``T`` is. Bin centres stand for their contents.
    """
    counts = np.asarray(hist, np.float64)
    if counts.sum() <= 0 or edges[-1] <= 0:
        return float(max(edges[-1], 1e-8))
    centres = (np.asarray(edges[:-1], np.float64) + np.asarray(edges[1:], np.float64)) / 2
    weights = counts / counts.sum()
    thresholds = np.linspace(float(edges[-1]) / candidates, float(edges[-1]), candidates)[:, None]
    step = thresholds / levels
    quantized = np.minimum(np.round(centres / step), levels) * step
    errors = (weights * (centres - quantized) ** 2).sum(axis=1)
    return float(thresholds[int(np.argmin(errors)), 0])


def mse_range(hist: np.ndarray, edges: np.ndarray, lowest: float, symmetric: bool) -> tuple[float, float]:
    """The ``(low, high)`` range to quantize a tensor with, given its ``|x|`` histogram.

    Non-negative tensors get ``(0, T)`` on 255 levels where the form is asymmetric (uint8)
    and 127 where it is symmetric; tensors with negative values get ``(-T, T)`` (127 levels a
    side in either form: 255 uint8 codes over ``2T``).
    """
    if lowest >= 0:
        return 0.0, mse_threshold(hist, edges, 127 if symmetric else 255)
    t = mse_threshold(hist, edges, 127)
    return -t, t
