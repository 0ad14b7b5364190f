"""Quantization-aware distillation: fine-tune a fake-quantized copy against the float model.

Where post-training quantization misses its target, the weights are nudged so that the INT8
network reproduces the FP32 one. Data-free like everything else: the inputs are the same
calibration samples (a distillation run's generator patches, MATLAB-bicubic upscaled), and the
target is the float model's own output, so no ground truth is involved.

The fake quantization mirrors what :mod:`edgesr.export.quantize` writes: per-output-channel
symmetric int8 weights, per-tensor activations on the quantized convs' inputs (symmetric int8
for the TensorRT form, uint8 for the CPU form), the float layers untouched. Gradients pass the
rounding straight through. The result is a plain float network of the same family; it is then exported and quantized
(re-calibrated) like any other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..models.reparam import replace_module
from ..models.srnet import SRNet
from ..ops.resize_torch import imresize


class _FakeQuantConv(nn.Module):
    """A conv whose input and weights are fake-quantized the way the exported QDQ model is."""

    def __init__(self, conv: nn.Conv2d, lo: float, hi: float, symmetric: bool, weights: bool = True) -> None:
        super().__init__()
        self.conv, self.weights = conv, weights
        if symmetric:
            self.scale, self.zero, self.qmin, self.qmax = max(abs(lo), abs(hi)) / 127, 0, -128, 127
        else:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            self.scale = (hi - lo) / 255
            self.zero, self.qmin, self.qmax = int(round(-lo / self.scale)), 0, 255
        self.scale = max(self.scale, 1e-8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero, self.qmin, self.qmax)
        w = self.conv.weight
        if not self.weights:
            return F.conv2d(x, w, self.conv.bias, padding=self.conv.padding)
        w_scale = (w.detach().abs().amax(dim=(1, 2, 3)) / 127).clamp_min(1e-8)
        w = torch.fake_quantize_per_channel_affine(w, w_scale, torch.zeros_like(w_scale, dtype=torch.int32),
                                                   0, -127, 127)
        return F.conv2d(x, w, self.conv.bias, padding=self.conv.padding)


def fake_quantized(net: SRNet, input_ranges: Sequence[tuple[float, float]], float_layers: Sequence[int],
                   form: str) -> SRNet:
    """A copy of ``net`` whose convs (except ``float_layers``) fake-quantize their input with the
    calibrated ``input_ranges`` (one per conv, graph order) and their weights per channel.

    In the CPU form a quantized conv writes its (ReLU) output in uint8, so a float conv right
    after a quantized one still reads a quantized input: it fake-quantizes its input and keeps
    its weights.

    The wrapped convs are the copy's own modules, kept in graph order in ``fq.plain_convs`` so
    that their trained weights can be read back.
    """
    fq = copy.deepcopy(net)
    convs = fq.convs()
    for i, conv in enumerate(convs):
        if i not in float_layers:
            replace_module(fq, conv, _FakeQuantConv(conv, *input_ranges[i], symmetric=form == "tensorrt"))
        elif form == "cpu" and i > 0 and i - 1 not in float_layers and net.relu_chain:
            replace_module(fq, conv, _FakeQuantConv(conv, *input_ranges[i], symmetric=False, weights=False))
    fq.plain_convs = convs  # a plain list: not registered twice
    return fq


def distill_quantized(net: SRNet, lr_pool: dict[int, np.ndarray], input_ranges: Sequence[tuple[float, float]],
                      float_layers: Sequence[int], form: str, steps: int, batch: int = 8, lr: float = 1e-5,
                      seed: int = 0) -> SRNet:
    """``net`` fine-tuned so that its fake-quantized self matches the float ``net``.

    ``lr_pool``: LR calibration patches per scale; each step draws a scale and a batch from it
    and gives it to the network as it sees images (upscaled by MATLAB's bicubic for a
    bicubic-input network, as they are for an LR-space one). ``input_ranges``: the
    export's calibrated conv input ranges (:func:`edgesr.export.quantize.conv_input_ranges`).
    """
    rng = np.random.default_rng(seed)
    teacher = copy.deepcopy(net).eval().requires_grad_(False)
    scales = sorted(lr_pool)
    student = fake_quantized(net, input_ranges, float_layers, form).train()
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    for _ in range(steps):
        s = scales[rng.integers(len(scales))]
        pool = lr_pool[s]
        idx = rng.choice(len(pool), size=min(batch, len(pool)), replace=False)
        x = torch.from_numpy(pool[idx]).float()
        x = imresize(x, float(s)) if net.input_kind == "bicubic" else x
        with torch.no_grad():
            target = teacher(x)
        loss = (student(x) - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    tuned = copy.deepcopy(net)
    with torch.no_grad():
        for dst, src in zip(tuned.convs(), student.plain_convs):
            dst.weight.copy_(src.weight)
            if src.bias is not None:
                dst.bias.copy_(src.bias)
    return tuned.eval()
