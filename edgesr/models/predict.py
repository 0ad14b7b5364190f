"""A torch model as an evaluation predictor (see :mod:`edgesr.evaluate`)."""

from __future__ import annotations

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
