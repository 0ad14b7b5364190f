"""The supervised VDSR training loop: residual learning on random patches, Adam with the
recipe's schedule, checkpoint/resume, a NaN guard and a wall-clock budget.

All randomness (init and patch draws) comes from torch's global generators, whose states are
checkpointed, so a run stopped and resumed ends with exactly the weights of an uninterrupted
run (on CPU). The optimiser helpers, the loss log and the two stop exceptions are
distillation's, shared rather than re-made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..distill.schedule import lr_at
from ..distill.trainer import StepLog, make_optimizer, set_lr
from ..evaluate import validation_psnr
from ..errors import EdgesrError
from ..models.predict import torch_predictor
from ..models.zoo import load_model
from ..models.vdsr import VDSR
from ..runs import (CHECKPOINT_FILE, Diverged, Interrupted, MetricsLog, StopRequest, load_checkpoint,
                    restore_rng, rng_state, save_finite_checkpoint)
from .patches import PatchSampler
from .recipe import TeacherRecipe

#: steps over which the speed is measured to fit the schedule into ``budget_minutes``; the
#: first steps are left out (cuDNN autotuning, allocator warm-up)
SPEED_WINDOW = (50, 250)
#: share of the remaining budget the schedule plans for (validation and checkpoints take the rest)
BUDGET_SHARE = 0.95


def start_from(model: VDSR, weights: str) -> None:
    """Load ``weights`` into ``model``; their shape must be the recipe's (one clear error if not)."""
    source, _ = load_model(weights)
    have, want = (source.width, source.depth), (model.width, model.depth)
    if have != want:
        raise EdgesrError(f"recipe key init: {weights} is a {have[0]}-wide, {have[1]}-layer VDSR; "
                          f"the recipe trains {want[0]}x{want[1]}")
    model.load_state_dict(source.state_dict())


class TeacherTrainer:
    """The state of one teacher-training run and the steps that advance it."""

    def __init__(self, recipe: TeacherRecipe, sampler: PatchSampler, device: torch.device,
                 val_pairs: dict | None = None) -> None:
        self.r = recipe
        self.sampler = sampler
        self.device = device
        self.amp = device.type == "cuda" and recipe.bf16
        self.channels_last = device.type == "cuda" and recipe.channels_last
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch shapes: pick the fastest kernels once
        torch.manual_seed(recipe.seed)
        model = VDSR(recipe.width, recipe.depth)
        if recipe.init:
            start_from(model, recipe.init)
        model = model.to(device).train()
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.opt = make_optimizer(self.model.parameters(), recipe.optim)
        self.step = 0
        #: the step count the schedule decays over: ``steps``, or fewer to fit the budget
        self.horizon = recipe.steps
        self.elapsed = 0.0
        self.bad_steps = 0
        self.val_pairs = val_pairs or {}
        self.log = StepLog()
        self._speed_mark: tuple[int, float] | None = None

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = out.float() - target
        return diff.abs().mean() if self.r.loss == "l1" else diff.square().mean()

    def train_step(self) -> float:
        """One optimiser step on a fresh batch; a non-finite loss skips the update."""
        set_lr(self.opt, lr_at(self.r.optim, self.step, self.horizon))
        x, y = self.sampler.sample(self.r.batch_size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(x)
        loss = self._loss(out, y)
        value = loss.item()
        if np.isfinite(value):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.r.optim.clip_grad_norm > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.r.optim.clip_grad_norm)
            self.opt.step()
            self.log.add(loss=value)
            self.bad_steps = 0
        else:
            self.bad_steps += 1
            if self.bad_steps >= self.r.max_bad_steps:
                raise Diverged(
                    f"training diverged at step {self.step}: {self.bad_steps} consecutive non-finite losses "
                    "(the last checkpoint on disk is the last good state; lower optim.lr)"
                )
        self.step += 1
        return value

    def _fit_budget(self) -> None:
        """Once, early in a budgeted run: shorten the horizon to the steps the budget allows."""
        if self.r.budget_minutes <= 0 or self.horizon < self.r.steps:
            return
        if self.step == SPEED_WINDOW[0]:
            self._speed_mark = (self.step, self.elapsed)
        elif self.step == SPEED_WINDOW[1] and self._speed_mark:
            s0, t0 = self._speed_mark
            rate = (self.step - s0) / max(self.elapsed - t0, 1e-9)
            left = BUDGET_SHARE * (60 * self.r.budget_minutes - self.elapsed)
            self.horizon = min(self.r.steps, self.step + max(int(rate * left), 1))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR on the held-out crops (float32, whole crops, as at test time), per scale and mean."""
        if not self.val_pairs:
            return {}
        out = validation_psnr(torch_predictor(self.model, self.device), self.val_pairs)
        self.model.train()
        return out

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "step": self.step, "horizon": self.horizon, "elapsed": self.elapsed,
            "model": self.model.state_dict(), "opt": self.opt.state_dict(),
            "log": {"sums": dict(self.log.sums), "counts": dict(self.log.counts)},
            **rng_state(),
        }

    def load_state_dict(self, st: dict) -> None:
        self.step, self.horizon, self.elapsed = st["step"], st["horizon"], st["elapsed"]
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.log = StepLog(**st["log"])
        restore_rng(st)

    def checkpoint(self, run_dir: Path) -> None:
        """Write the checkpoint, unless any weight is non-finite (then stop: never save bad state)."""
        save_finite_checkpoint([self.model], self.state_dict, run_dir / CHECKPOINT_FILE, self.step)

    def resume(self, run_dir: Path) -> None:
        self.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_FILE))

    # ----------------------------------------------------------------- loop
    def run(self, run_dir: Path, metrics: MetricsLog, stop: StopRequest,
            on_step: Callable[[int, dict], None] | None = None) -> None:
        """Train to the horizon, the time budget, or a stop request."""
        r = self.r
        started = time.perf_counter() - self.elapsed
        last_val: dict[str, float] = {}
        while self.step < self.horizon:
            self.train_step()
            self.elapsed = time.perf_counter() - started
            self._fit_budget()
            step, done = self.step, self.step >= self.horizon
            record: dict = {}
            if step % r.log_every == 0 or done:
                record = {"step": step, "lr": self.opt.param_groups[0]["lr"], "time": round(self.elapsed, 2),
                          **self.log.flush()}
            if self.val_pairs and (step % r.validation.every == 0 or done):
                last_val = self.validate()
                record = {"step": step, **record, **last_val}
            if record:
                metrics.write(record)
            if on_step:
                on_step(step, {**record, **last_val})
            budget_hit = r.budget_minutes > 0 and self.elapsed > 60 * r.budget_minutes
            due = step % r.checkpoint_every == 0 or stop.requested or budget_hit or done
            if due and self.bad_steps == 0:  # never checkpoint in the middle of a non-finite streak
                self.checkpoint(run_dir)
            if stop.requested:
                raise Interrupted(f"{stop.signal_name} at step {step}: checkpoint saved; continue with "
                                  f"edgesr teacher train --resume {run_dir}")
            if budget_hit:
                break
