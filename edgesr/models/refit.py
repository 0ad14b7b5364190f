"""Data-free student initialisation by reconstruction: refit a pruned student to its teacher,
one conv at a time, in closed form.

A student pruned to the teacher's strongest channels keeps useful filters, yet its output
collapses to the skip path: every layer now sees half of the inputs it was trained with, and
the errors compound over 20 layers. Refitting repairs each layer in turn. Each layer keeps the
teacher channels that carry most to the next layer on the fitting inputs (mean activation
energy times the energy of the next layer's weights that read the channel); for conv ``l`` the
student's own previous-layer outputs (so that earlier errors are compensated, not ignored) are
the regressors, and the teacher's pre-activations on the kept channels are the targets; the
tail's target is the teacher's residual output. Each fit is a ridge least-squares problem on
``9 * C_in`` unknowns per output channel, solved exactly from its normal equations. No gradient
step and no natural image: the inputs are whatever data-free samples the caller brings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .vdsr import VDSR


@dataclass
class RefitResult:
    student: VDSR
    #: the teacher's output on the fitting inputs, a by-product worth caching (distillation
    #: targets for the same samples)
    teacher_output: torch.Tensor
    #: per conv, ``|student pre-activation - target|^2 / |target|^2`` on the fitting inputs
    errors: list[float]
    #: per body block of the student, the teacher channels its channels were fitted to (sorted):
    #: the channel correspondence a feature-level loss needs
    kept: list[torch.Tensor]


def _conv(x: torch.Tensor, weight: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([F.conv2d(x[i : i + chunk], weight, padding=1) for i in range(0, len(x), chunk)])


def channel_importance(act: torch.Tensor, next_weight: torch.Tensor) -> torch.Tensor:
    """How much each channel of ``act`` ``(N, C, H, W)`` feeds the next conv: its mean energy
    times the energy of the weights ``next_weight[:, c]`` that read it."""
    return act.float().square().mean(dim=(0, 2, 3)) * next_weight.float().square().sum(dim=(0, 2, 3))


@torch.no_grad()
def layerwise_forward(net: VDSR, inputs: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """``net(inputs)`` computed one layer at a time over all inputs, by the very operations
    :func:`refit_student` uses: its ``teacher_output`` and this are equal to the bit, so a run
    that recomputes its cached targets (on resume) gets the same numbers as the run that refitted."""
    act = inputs.float()
    *hidden, tail = net.convs()
    for conv in hidden:
        act = torch.relu(_conv(act, conv.weight, chunk))
    return inputs.float() + _conv(act, tail.weight, chunk)


def _sampled_columns(x: torch.Tensor, tgt: torch.Tensor, pixels: float,
                     generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The im2col columns of ``x`` and the ``tgt`` values at a random share ``pixels`` of the
    positions (the same positions in every image of the chunk), gathered from the padded maps
    rather than cut from a full unfold, which would cost 1/pixels times the memory traffic."""
    n, c, h, w = x.shape
    keep = torch.randperm(h * w, generator=generator)[: max(1, int(pixels * h * w))].to(x.device)
    rows, cols = keep // w, keep % w
    padded = F.pad(x, (1, 1, 1, 1))
    taps = [padded[:, :, rows + dy, cols + dx] for dy in range(3) for dx in range(3)]  # each (n, c, k)
    return torch.stack(taps, dim=2).reshape(n, 9 * c, -1), tgt[:, :, keep]


def solve_conv(inputs: torch.Tensor, targets: torch.Tensor, ridge: float, pixels: float = 1.0,
               chunk: int = 8, generator: torch.Generator | None = None) -> torch.Tensor:
    """The 3x3 conv weight (no bias, padding 1) that best maps ``inputs`` to ``targets``.

    Minimises ``|conv(inputs, W) - targets|^2 + ridge * mean(diag(G)) * |W|^2`` where ``G`` is
    the Gram matrix of the im2col columns (the ridge is relative, so it means the same at any
    activation scale). ``pixels`` < 1 uses a random share of the positions: the normal
    equations need far fewer rows than a batch of images has pixels.
    """
    c_in, c_out = inputs.shape[1], targets.shape[1]
    dim = 9 * c_in
    gram = torch.zeros(dim, dim, dtype=torch.float64, device=inputs.device)
    cross = torch.zeros(dim, c_out, dtype=torch.float64, device=inputs.device)
    for i in range(0, len(inputs), chunk):
        x, tgt = inputs[i : i + chunk].float(), targets[i : i + chunk].float().flatten(2)
        if pixels < 1.0:
            cols, tgt = _sampled_columns(x, tgt, pixels, generator)
        else:
            cols = F.unfold(x, 3, padding=1)  # (n, dim, positions), rows in (c_in, kh, kw) order
        cols = cols.transpose(0, 1).reshape(dim, -1)
        tgt = tgt.transpose(0, 1).reshape(c_out, -1)
        gram += (cols @ cols.T).double()
        cross += (cols @ tgt.T).double()
    lam = ridge * float(gram.diagonal().mean()) if ridge > 0 else 0.0
    eye = torch.eye(dim, dtype=torch.float64, device=gram.device)
    w = torch.linalg.solve(gram + lam * eye, cross)  # (dim, c_out); unfold order is (c_in, kh, kw)
    return w.T.reshape(c_out, c_in, 3, 3).float()


@torch.no_grad()
def refit_student(teacher: VDSR, width: int, inputs: torch.Tensor, blocks: int | None = None,
                  ridge: float = 1e-4, pixels: float = 1.0, chunk: int = 8, seed: int = 0) -> RefitResult:
    """A ``width``-channel student refitted to ``teacher`` on ``inputs`` (bicubic-upscaled Y,
    ``(N, 1, H, W)`` in [0, 1]), keeping per layer the teacher channels of largest
    :func:`channel_importance`. With ``blocks`` fewer than
    the teacher's, the student has the first ``blocks`` body blocks and its tail is fitted to
    the teacher's whole residual (an early progressive stage)."""
    if width > teacher.width:
        raise ValueError(f"cannot refit {teacher.width} channels to {width}")
    n_blocks = teacher.blocks if blocks is None else blocks
    device = teacher.head.weight.device
    gen = torch.Generator().manual_seed(seed)
    student = VDSR(width, teacher.depth, n_blocks).to(device)
    inputs = inputs.to(device).float()
    convs = teacher.convs()
    *s_convs, s_tail = student.convs()
    t_act, s_act = inputs, inputs
    errors: list[float] = []
    kept: list[torch.Tensor] = []
    for i, t_conv in enumerate(convs[:-1]):
        t_pre = _conv(t_act, t_conv.weight, chunk)
        t_act = torch.relu(t_pre)
        if i > n_blocks:
            continue  # deeper teacher layers still feed its residual, which the tail must match
        keep = channel_importance(t_act, convs[i + 1].weight).argsort(descending=True)[:width].sort().values
        target = t_pre[:, keep]
        if i > 0:
            kept.append(keep.cpu())
        w = solve_conv(s_act, target, ridge, pixels, chunk, gen)
        s_convs[i].weight.copy_(w)
        s_pre = _conv(s_act, w, chunk)
        errors.append(float(((s_pre - target) ** 2).sum() / (target ** 2).sum().clamp_min(1e-30)))
        s_act = torch.relu(s_pre)
    residual = _conv(t_act, convs[-1].weight, chunk)
    w = solve_conv(s_act, residual, ridge, pixels, chunk, gen)
    s_tail.weight.copy_(w)
    s_res = _conv(s_act, w, chunk)
    errors.append(float(((s_res - residual) ** 2).sum() / (residual ** 2).sum().clamp_min(1e-30)))
    return RefitResult(student.train(), inputs + residual, errors, kept)
