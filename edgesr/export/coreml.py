"""CoreML: an ML program (``.mlpackage``) with a flexible input size and FP16 compute.

Converted from the same :class:`~edgesr.export.deploy_net.DeployNet` as the ONNX files (traced
by TorchScript, which coremltools converts most completely). Conversion and saving work on
Linux; running a package needs macOS or iOS, so tests read the saved spec instead.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..artifact import ArtifactMeta
from ..optional import require
from .onnx_export import MIN_SIDE
from .quiet import quiet

#: largest input side the package accepts (CoreML wants a bounded range for the Neural Engine)
MAX_SIDE = 2048


def to_coreml(module: torch.nn.Module, meta: ArtifactMeta, folder: Path) -> Path:
    """Fill the empty ``folder`` with ``module`` as an ML package (the caller makes it atomic).

    ``meta.precision``: ``fp32`` computes in float32; ``fp16`` in float16; ``int8`` in float16
    with 8-bit weights (per-channel symmetric; CoreML skips tensors under 2048 values, so the
    bicubic taps, the head and the tail stay FP16).
    """
    # coremltools prints progress bars and torch-version warnings on import and conversion
    with quiet("coremltools", stderr=True):
        ct = require("coremltools", "coreml", "CoreML export")

        traced = torch.jit.trace(module.eval(), torch.rand(1, 1, 16, 16))
        side = ct.RangeDim(MIN_SIDE, MAX_SIDE, default=64)
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType(name="input", shape=ct.Shape((1, 1, side, side)), dtype=np.float32)],
            outputs=[ct.TensorType(name="output", dtype=np.float32)],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32 if meta.precision == "fp32" else ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS16,
        )
        if meta.precision == "int8":
            config = ct.optimize.coreml.OptimizationConfig(
                global_config=ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
            mlmodel = ct.optimize.coreml.linear_quantize_weights(mlmodel, config)
        mlmodel.short_description = (f"edgesr x{meta.scale} super-resolution of the Y channel "
                                     f"({meta.input_kind} input, {meta.precision})")
        mlmodel.user_defined_metadata.update(meta.to_props())
        with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
            package = Path(scratch) / "model.mlpackage"  # coremltools insists on the suffix
            mlmodel.save(str(package))
            for item in package.iterdir():
                shutil.move(str(item), folder / item.name)
    return folder
