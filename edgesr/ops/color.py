"""ITU-R BT.601 colour conversion exactly as MATLAB's ``rgb2ycbcr``/``ycbcr2rgb`` on doubles.

SR networks of the VDSR family see only the luma channel, and the field's PSNR is measured on
it, so every pipeline must compute Y the way MATLAB does. The arithmetic order below (each
coefficient divided by 255 first, then a sum of products plus the offset) is MATLAB's, so the
result agrees with the prepared references in float64. Works on NumPy arrays and on torch
tensors alike (channels last).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Array = TypeVar("Array")

#: MATLAB's ``rgb2ycbcr`` matrix and offsets for RGB and YCbCr both in [0, 1], as MATLAB uses them
#: for ``double`` images: the [0, 255] coefficients divided by 255.
T_UNIT = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
OFFSET_UNIT = np.array([16.0, 128.0, 128.0]) / 255.0
T_UNIT_INV = np.linalg.inv(T_UNIT)


def _lincomb(coeffs: np.ndarray, offset: float, x):
    """``coeffs`` applied to the first three channels of ``x`` (channels last), plus ``offset``."""
    return coeffs[0] * x[..., 0] + coeffs[1] * x[..., 1] + coeffs[2] * x[..., 2] + offset


def rgb_to_y(rgb: Array) -> Array:
    """Luma Y in [16/255, 235/255] from RGB in [0, 1], channels last."""
    return _lincomb(T_UNIT[0], OFFSET_UNIT[0], rgb)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` for RGB in [0, 1] (channels last); YCbCr in [0, 1]."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return np.stack([_lincomb(T_UNIT[p], OFFSET_UNIT[p], rgb) for p in range(3)], axis=-1)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """MATLAB ``ycbcr2rgb`` for YCbCr in [0, 1] (channels last); RGB in [0, 1], not clipped."""
    shifted = np.asarray(ycbcr, dtype=np.float64)[..., :3] - OFFSET_UNIT
    return np.stack([_lincomb(T_UNIT_INV[p], 0.0, shifted) for p in range(3)], axis=-1)


def image_to_y(img: np.ndarray) -> np.ndarray:
    """Y in [0, 1] of an 8-bit image; a single-channel image is taken as Y = gray / 255.

    The gray convention is MATLAB's SR test code (``if size(im, 3) == 1``), which the
    prepared Set14 arrays follow for ``bridge``.
    """
    scaled = np.asarray(img, dtype=np.float64) / 255.0
    if scaled.ndim == 2:
        return scaled
    if scaled.ndim == 3 and scaled.shape[2] == 1:
        return scaled[..., 0]
    return rgb_to_y(scaled[..., :3])
