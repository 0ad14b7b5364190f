"""Supervised VDSR training: residual learning on random patches with the recipe's optimiser
and schedule, the schedule fitted to a wall-clock budget.

All randomness (init and patch draws) comes from torch's global generators, whose states are
checkpointed, so a run stopped and resumed ends with exactly the weights of an uninterrupted
run (on CPU). Under torchrun each process trains on its rows of every global batch, the
model in DDP (:mod:`edgesr.train.distributed`). The loop, checkpoints and logging are :mod:`edgesr.train`'s.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import EdgesrError
from ..models.vdsr import VDSR
from ..models.zoo import load_model
from ..train.distributed import World
from ..train.optim import build_optimizer, descend, lr_at, set_lr
from ..train.trainer import Trainer
from .patches import PatchSampler
from .recipe import TeacherRecipe


def start_from(model: VDSR, weights: str) -> None:
    """Load ``weights`` into ``model``; their shape must be the recipe's (one clear error if not)."""
    source, _ = load_model(weights)
    have, want = (source.width, source.depth), (model.width, model.depth)
    if have != want:
        raise EdgesrError(f"recipe key init: {weights} is a {have[0]}-wide, {have[1]}-layer VDSR; "
                          f"the recipe trains {want[0]}x{want[1]}")
    model.load_state_dict(source.state_dict())


class TeacherTrainer(Trainer):
    """One VDSR trained on patches of real images, its optimiser, and the step that advances it."""

    recipe: TeacherRecipe
    command = "edgesr teacher train"

    def __init__(self, recipe: TeacherRecipe, sampler: PatchSampler, device: torch.device,
                 val_pairs: dict | None = None, world: World | None = None) -> None:
        super().__init__(recipe, device, val_pairs, world)
        self.sampler = sampler
        model = VDSR(recipe.width, recipe.depth)
        if recipe.init:
            start_from(model, recipe.init)
        self.model = self.prepare(model.train())
        #: what the training step runs: ``model`` in DDP under torchrun, ``model`` itself otherwise
        self.ddp_model = self.world.wrap(self.model)
        self.opt = build_optimizer(self.model.parameters(), recipe.optim)
        #: the step count the schedule decays over: ``steps``, or fewer to fit the budget
        self.horizon = self.planned_steps = recipe.steps

    def networks(self) -> list[nn.Module]:
        return [self.model]

    def train_step(self) -> bool:
        """One optimiser step on a fresh batch; a non-finite loss (on any rank) skips the update."""
        set_lr(self.opt, lr_at(self.recipe.optim, self.step, self.horizon))
        x, y = self.sampler.sample(self.recipe.batch_size, self.rows)
        with self.autocast():
            out = self.ddp_model(self.as_input(x))
        diff = out.float() - y
        loss = diff.abs().mean() if self.recipe.loss == "l1" else diff.square().mean()
        value = self.agree(loss)
        if not math.isfinite(value):
            return False
        descend(self.opt, loss, self.recipe.optim)
        self.losses.add(loss=value)
        return True

    def log_fields(self) -> dict:
        return {"lr": self.opt.param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        return {"horizon": self.horizon, "model": self.model.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, st: dict) -> None:
        self.horizon = st["horizon"]
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
