"""CoreML packages (``.mlpackage``/``.mlmodel``) on macOS, through coremltools' predict.

The artifact metadata sits in the model's user-defined metadata under the same ``edgesr.*``
keys as ONNX. coremltools can convert on Linux but predicts only on macOS, so elsewhere this
backend refuses up front rather than failing inside coremltools.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..artifact import ArtifactMeta
from ..errors import EdgesrError
from ..optional import require
from .base import Upscaler

SUFFIXES = (".mlpackage", ".mlmodel")


class CoreMLUpscaler(Upscaler):
    backend = "coreml"

    def __init__(self, path: Path) -> None:
        if sys.platform != "darwin":
            raise EdgesrError(f"{path.name} is a CoreML model; CoreML runs only on macOS/iOS, not {sys.platform}")
        ct = require("coremltools", "coreml", f"{path.name} (a CoreML model)")
        try:
            self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
        except Exception as exc:
            raise EdgesrError(f"cannot load {path} as a CoreML model: {type(exc).__name__}") from None
        props = dict(self.model.user_defined_metadata)
        super().__init__(path, ArtifactMeta.from_props(props, source=str(path)))

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict({"input": x})["output"])
