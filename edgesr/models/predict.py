"""A torch model as an evaluation predictor (see :mod:`edgesr.evaluate`)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def torch_predictor(model: nn.Module, device: str | torch.device = "cpu"):
    """Run ``model`` on one bicubic Y image at a time, in float32, without autograd."""
    model = model.to(device).eval()

    @torch.inference_mode()
    def predict(bicubic_y: np.ndarray, scale: int) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(bicubic_y, dtype=np.float32))[None, None].to(device)
        return model(x)[0, 0].float().cpu().numpy()

    return predict


def benchmark_predictor(model: nn.Module, device: str | torch.device = "cpu"):
    """The predictor for whole benchmark images (Set5/Set14 at the end of a run, ``edgesr eval``).

    On the CPU that is onnxruntime on the model exported to ONNX (the export's own
    :func:`~edgesr.export.onnx_export.torch_to_onnx`, on the command's threads): its convolutions
    run these models 2-3 times faster than torch's (``benchmarks/results/cpu_latency.md``), and
    its outputs match torch's to 1e-6 (``benchmarks/final_eval.py`` measures both). On a GPU,
    torch. The model passed in is not changed.
    """
    device = torch.device(device)
    if device.type != "cpu":
        return torch_predictor(model, device)
    from ..export.onnx_export import torch_to_onnx
    from ..export.quantize import cpu_session

    session = cpu_session(torch_to_onnx(copy.deepcopy(model).cpu().float().eval()))

    def predict(bicubic_y: np.ndarray, scale: int) -> np.ndarray:
        x = np.ascontiguousarray(bicubic_y, dtype=np.float32)[None, None]
        return session.run(None, {"input": x})[0][0, 0]

    return predict
