"""A torch model as an evaluation predictor (see :mod:`edgesr.evaluate`).

A predictor takes the image the model's ``input_kind`` names (the bicubic-upscaled Y, or the
LR Y for LR-space networks) and the scale; a :class:`~edgesr.models.srnet.ScaleSet` answers
each scale with that scale's network.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .reparam import folded
from .srnet import net_for


def input_kind(model: nn.Module) -> str:
    """What the evaluation loop must feed ``model``: ``bicubic`` or ``lr``."""
    return getattr(model, "input_kind", "bicubic")


def torch_predictor(model: nn.Module, device: str | torch.device = "cpu"):
    """Run ``model`` on one image at a time, in float32, without autograd."""
    model = model.to(device).eval()

    @torch.inference_mode()
    def predict(image: np.ndarray, scale: int) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
        return net_for(model, scale)(x)[0, 0].float().cpu().numpy()

    return predict


def benchmark_predictor(model: nn.Module, device: str | torch.device = "cpu"):
    """The predictor for whole benchmark images (Set5/Set14 at the end of a run, ``edgesr eval``).

    On the CPU that is onnxruntime on the model exported to ONNX (the export's own
    :func:`~edgesr.export.onnx_export.torch_to_onnx`, on the command's threads, one session per
    network, made when its scale is first asked for): its convolutions run these models 2-3 times
    faster than torch's (``benchmarks/results/cpu_latency.md``), and its outputs match torch's
    to 1e-6 (``benchmarks/final_eval.py`` measures both). On a GPU, torch. The model passed in
    is not changed.
    """
    device = torch.device(device)
    if device.type != "cpu":
        return torch_predictor(model, device)
    from ..export.onnx_export import torch_to_onnx
    from ..export.quantize import cpu_session

    sessions: dict[int, object] = {}

    def session(scale: int):
        net = net_for(model, scale)
        key = id(net)
        if key not in sessions:
            sessions[key] = cpu_session(torch_to_onnx(folded(copy.deepcopy(net)).cpu().float().eval()))
        return sessions[key]

    def predict(image: np.ndarray, scale: int) -> np.ndarray:
        x = np.ascontiguousarray(image, dtype=np.float32)[None, None]
        return session(scale).run(None, {"input": x})[0][0, 0]

    return predict

