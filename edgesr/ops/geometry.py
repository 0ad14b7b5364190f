"""Crops that the SR evaluation protocol needs."""

from __future__ import annotations

import numpy as np


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width down to multiples of ``scale`` (MATLAB ``modcrop``: keep top-left)."""
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels from each side of the last two axes."""
    if border <= 0:
        return img
    return img[..., border:-border, border:-border]
