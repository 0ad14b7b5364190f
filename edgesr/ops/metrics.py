"""PSNR and SSIM on the Y channel, as the SR field reports them.

Protocol (pytorch-vdsr / VDSR evaluation): values on the 0..255 scale, the prediction clipped
to [0, 255] and *not* rounded, ``scale`` pixels shaved from each border, PSNR averaged per
image. SSIM is Wang et al. 2004: an 11x11 Gaussian window with sigma 1.5, ``valid`` filtering,
K1 = 0.01, K2 = 0.03, L = 255. NumPy only, so that the device side computes the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

from .geometry import shave

PEAK = 255.0


def prepare(pred: np.ndarray, gt: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip the prediction to [0, 255] and shave both images: the protocol's common first step."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return shave(np.clip(pred, 0.0, PEAK), border), shave(gt, border)


def psnr(pred: np.ndarray, gt: np.ndarray, border: int = 0) -> float:
    """PSNR in dB of Y images on the 0..255 scale (100 for identical images, as pytorch-vdsr)."""
    pred, gt = prepare(pred, gt, border)
    mse = float(np.mean((pred - gt) ** 2))
    return 100.0 if mse == 0 else 20.0 * math.log10(PEAK / math.sqrt(mse))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps; the 2-D window is their outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with the Gaussian window (MATLAB ``filter2(w, x, 'valid')``)."""
    rows = np.lib.stride_tricks.sliding_window_view(img, taps.size, axis=0) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, taps.size, axis=1) @ taps


def ssim(pred: np.ndarray, gt: np.ndarray, border: int = 0) -> float:
    """Mean SSIM (Wang et al.) of Y images on the 0..255 scale."""
    x, y = prepare(pred, gt, border)
    taps = gaussian_window()
    if min(x.shape) < taps.size:
        raise ValueError(f"SSIM needs images of at least {taps.size}x{taps.size} after shaving")
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x * mu_x
    var_y = _filter_valid(y * y, taps) - mu_y * mu_y
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))
