"""MATLAB bicubic as an :class:`Upscaler`: the floor every model is compared with.

An identity network fed the bicubic-upscaled image is bicubic itself, so photos, tiling and
colour handling stay the ones :mod:`edgesr.runtime.photo` gives a real artifact; the demo puts
it beside a model's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifact import ArtifactMeta
from .base import Upscaler


class BicubicUpscaler(Upscaler):
    backend = "numpy"

    def __init__(self, scale: int = 2) -> None:
        super().__init__(Path("bicubic"), ArtifactMeta(scale=scale, input_kind="bicubic", precision="fp32",
                                                       model="MATLAB bicubic"))

    def _run(self, x: np.ndarray) -> np.ndarray:
        return x

    @property
    def file_size(self) -> int:
        return 0
