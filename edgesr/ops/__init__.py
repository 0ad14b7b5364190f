"""The formulas every stage shares: MATLAB resize, BT.601 colour, crops and SR metrics.

Importing this package never imports torch; the differentiable resize lives in
:mod:`edgesr.ops.resize_torch`.
"""

from .color import image_to_y, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from .geometry import modcrop, shave
from .metrics import psnr, ssim
from .resize import contributions, imresize

__all__ = [
    "contributions",
    "image_to_y",
    "imresize",
    "modcrop",
    "psnr",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "shave",
    "ssim",
    "ycbcr_to_rgb",
]
