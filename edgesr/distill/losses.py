"""The losses of data-free SR distillation (paper Eq. 1-5, 13), mean-reduced so weights mean
something, and the generator-path resizes.

``x = up_s(G(z))`` and ``L_R = |down_s(T(x)) - G(z)|`` go through the differentiable MATLAB
bicubic. With ``round_bicubic`` the up-sampling is rounded to 8 bits as in the DFSR reference:
``torch.round`` has zero gradient, so no generator loss then reaches the generator.
"""

from __future__ import annotations

import torch

from ..ops.resize_torch import imresize


def upscale(lr: torch.Tensor, scale: int, round_bicubic: bool = False) -> torch.Tensor:
    """Network input from an LR batch: MATLAB bicubic x scale, clamped to [0, 1]."""
    x = imresize(lr, float(scale)).clamp(0, 1)
    if round_bicubic:
        x = torch.round(x * 255) / 255
    return x


def inner(t: torch.Tensor, margin: int) -> torch.Tensor:
    """``t`` without its outer ``margin`` pixels on each side (the part of a crop whose cached
    targets the crop's own context determines)."""
    return t[..., margin : t.shape[-2] - margin, margin : t.shape[-1] - margin] if margin else t


def kd_loss(teacher_out: torch.Tensor, student_out: torch.Tensor, kind: str = "l1", margin: int = 0) -> torch.Tensor:
    """L_KD = mean |T(x) - S(x)| (Eq. 3/5), or with ``kind="mse"`` its square: the error PSNR
    measures, which weighs the large errors at edges more than L1 does. ``margin``: over the
    images less that many pixels on each side (``samples.loss_margin``)."""
    diff = inner(teacher_out, margin).float() - inner(student_out, margin).float()
    return diff.square().mean() if kind == "mse" else diff.abs().mean()


def feature_loss(teacher_feats: list[torch.Tensor], student_feats: list[torch.Tensor],
                 channels: torch.Tensor) -> torch.Tensor:
    """Mean over the student's body blocks of its relative L1 distance to the teacher channels
    the refit fitted each block to (``channels[b]``): the teacher says how it gets to its output,
    not only where. Relative, so that every block weighs alike whatever its activations' size."""
    terms = []
    for b, s in enumerate(student_feats):
        t = teacher_feats[b][:, channels[b]].float()
        terms.append((s.float() - t).abs().sum() / t.abs().sum().clamp_min(1e-12))
    return torch.stack(terms).mean()


def adversarial_loss(l_kd: torch.Tensor) -> torch.Tensor:
    """L_GEN = -log(L_KD + 1) (Eq. 2): the generator seeks samples the student gets wrong."""
    return -torch.log(l_kd + 1)


def reconstruction_loss(teacher_out: torch.Tensor, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """L_R = mean |down_s(T(x)) - G(z)| (Eq. 1): generated LR should be a fixed point of SR+down."""
    return (imresize(teacher_out.float(), 1.0 / scale) - lr.float()).abs().mean()
