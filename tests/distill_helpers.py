"""Tiny distillation setups that run in a fraction of a second on a CPU."""

from __future__ import annotations

import torch

from edgesr.config import from_dict
from edgesr.distill.recipe import DistillRecipe
from edgesr.distill.trainer import Distiller
from edgesr.models import VDSR


def tiny_recipe(**overrides) -> DistillRecipe:
    base = {
        "batch_size": 4, "student_steps_per_gen_step": 2, "scales": [2, 4],
        "student": {"width": 4, "depth": 6},
        "student_optim": {"name": "sgd", "lr": 0.01, "clip_grad_norm": 0.4},
        "generator": {"lr_sizes": [8, 8], "channels": 8, "z_dim": 16,
                      "optim": {"name": "adam", "lr": 1e-3, "schedule": "constant"}},
        "cmi": {"bank_size": 8, "negatives": 4, "head_dim": 8},
        "progressive": {"stages": 2, "steps": [3]},
        "validation": {"data": None}, "evaluation": {"sets": []},
        "checkpoint_every": 2, "log_every": 1,
    }
    base.update(overrides)
    return from_dict(DistillRecipe, base)


def tiny_teacher(seed: int = 123) -> VDSR:
    torch.manual_seed(seed)
    return VDSR(8, depth=6)


def tiny_distiller(**overrides) -> Distiller:
    return Distiller(tiny_recipe(**overrides), tiny_teacher(), torch.device("cpu"))
