"""Optimiser settings, their builder and the learning-rate schedules.

Schedules are pure functions of the step rather than torch scheduler objects: the learning
rate at step t is recomputed from t, so resuming needs nothing about the schedule saved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from torch import nn

from ..config import Count, Decay, NonNegative, NonNegativeInt, Range


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adam"] = "sgd"
    lr: NonNegative = 0.1
    #: SGD only
    momentum: Decay = 0.9
    #: Adam only
    betas: tuple[Decay, Decay] = (0.5, 0.999)
    weight_decay: NonNegative = 0.0
    #: gradient-norm clip (0 = off)
    clip_grad_norm: NonNegative = 0.0
    #: ``step``: lr x gamma every ``step_every`` steps; ``cosine``: to 0 over the horizon; ``constant``
    schedule: Literal["step", "cosine", "constant"] = "step"
    step_every: Count = 1000
    gamma: Annotated[float, Range(0, 1, low_open=True)] = 0.1
    #: steps of linear warm-up from 0 (0 = none)
    warmup: NonNegativeInt = 0
    #: Adam only: update all parameters in one fused kernel instead of a few small ops per
    #: tensor: the same rule, rounded differently. Worth it where the steps are short and the
    #: tensors many (an over-parameterised LR student on a CPU); off keeps earlier runs' numbers
    fused: bool = False


def build_optimizer(params: Iterable[nn.Parameter] | Iterable[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names over ``params``: tensors, or torch's parameter groups (a group
    may carry an ``lr_scale`` that :func:`set_lr` applies)."""
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                            fused=cfg.fused or None)


def lr_at(cfg: OptimConfig, step: int, total: int) -> float:
    """Learning rate after ``step`` of ``total`` steps."""
    if cfg.warmup and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** (step // cfg.step_every)
    if cfg.schedule == "cosine":
        t = (step - cfg.warmup) / max(total - cfg.warmup, 1)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return cfg.lr


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """``lr`` for every parameter group, times the group's ``lr_scale`` where it has one."""
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor, cfg: OptimConfig,
            sync: Callable[[], None] | None = None) -> None:
    """One update of ``opt``'s parameters on ``loss``, gradient norm clipped as ``cfg`` says.
    Parameters ``loss`` does not reach keep no gradient, and so no update (Adam skips them);
    ``sync`` runs after the backward (averaging gradients a net outside DDP computed)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if sync is not None:
        sync()
    if cfg.clip_grad_norm > 0:
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.clip_grad_norm)
    opt.step()
