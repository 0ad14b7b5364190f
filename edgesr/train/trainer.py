"""What a training method gives the loop: :class:`Trainer`.

The loop owns the order of things; a method owns its networks, optimisers, data and step. New
sample sources, cached teacher outputs or another initialisation change a method's
``__init__`` or ``train_step``, never the loop. Under torchrun a method draws the random numbers
of the global batch and trains on its rows (``self.rows``), through DDP wrappers of its networks
(``World.wrap``), and agrees on its loss before updating (:meth:`Trainer.agree`): :mod:`.distributed`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..evaluate import bicubic_predictor, validation_psnr
from ..models.predict import input_kind, torch_predictor
from .distributed import World
from .recipe import RunRecipe


@dataclass
class LossLog:
    """Running means of the losses between two log lines (checkpointed: a resumed run logs the same)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return out


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX-512 BF16): elsewhere bf16
    autocast is emulated and slower than float32."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(check()) for check in checks if check is not None)


#: steps over which the speed is measured to fit the schedule into ``budget_minutes``; the
#: first steps are left out (cuDNN autotuning, allocator warm-up, the first validation)
SPEED_WINDOW = (50, 250)
#: the schedule is fitted once more when this share of the training time after the speed mark
#: has passed, from the speed over all of it: a 15-second sample of an hour's run can be 7% off
#: (an hour's run planned 41k steps where 46k fitted), minutes of it are not
REFIT_SHARE = 0.25
#: share of the remaining budget the schedule plans for (validation and checkpoints take the rest)
BUDGET_SHARE = 0.95


class Trainer(ABC):
    """One training run's state and the step that advances it.

    The loop advances ``step`` (steps completed) and ``elapsed`` (seconds of training) and
    checkpoints them with ``losses``, the RNG states and :meth:`state_dict`. A subclass sets
    ``horizon`` (the step the run ends at; it may shrink while training) and ``model`` (the
    network validated and saved), and implements the methods marked abstract.
    """

    #: the command that resumes a run of this trainer, for messages
    command: str = ""
    horizon: int
    model: nn.Module
    #: the steps the recipe asks for: the horizon until a time budget shortens it
    planned_steps: int

    def __init__(self, recipe: RunRecipe, device: torch.device, val_pairs: dict | None = None,
                 world: World | None = None) -> None:
        self.recipe = recipe
        self.device = device
        #: the processes training together (one unless launched by torchrun); every rank seeds alike
        self.world = world or World()
        #: this process's rows of each global batch
        self.rows = self.world.rows(recipe.batch_size)
        self.val_pairs = val_pairs or {}
        self.step = 0
        self.elapsed = 0.0
        #: ``(step, elapsed)`` where training proper started in this process, after the run's
        #: preparation: steps/s (progress line, results.json) count from here
        self.training_from: tuple[int, float] = (0, 0.0)
        self.losses = LossLog()
        #: recipe keys changed since the checkpoint this run resumed from (see ``RunRecipe.RESUMABLE``)
        self.recipe_changes: list[str] = []
        cuda = device.type == "cuda"
        cpu_fast = device.type == "cpu" and recipe.cpu_bf16 and native_cpu_bf16()
        self.amp = (cuda and recipe.bf16) or cpu_fast
        self.channels_last = (cuda and recipe.channels_last) or cpu_fast
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed patch shapes: pick the fastest kernels once
        torch.manual_seed(recipe.seed)
        #: ``(step, elapsed)`` where the speed measurement of a budgeted run began (checkpointed)
        self.speed_mark: tuple[int, float] | None = None
        #: whether the schedule's second fit (``REFIT_SHARE``) was made (checkpointed)
        self.refitted = False

    # ------------------------------------------------------------------ what a method provides
    @abstractmethod
    def train_step(self) -> bool:
        """Step number ``self.step`` (the loop counts it); False, and no update, if a loss was
        non-finite. Loss values for the log go to ``self.losses``."""

    @abstractmethod
    def networks(self) -> list[nn.Module]:
        """Every trained network: all must be finite before a checkpoint is written."""

    @abstractmethod
    def state_dict(self) -> dict:
        """The method's state: tensors and plain data only (checkpoints are read without unpickling code)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...

    def begin(self, resumed: bool, run_dir: Path | None = None) -> None:  # noqa: B027 (a hook)
        """Called once before training, after a resume has loaded the checkpoint (``resumed``):
        the place for setup a resumed run must not repeat or must redo differently. What it
        computes at length can be kept in ``run_dir`` for a resume to read."""

    def preparation(self, resumed: bool) -> str:
        """What :meth:`begin` will do, in a few words for the line shown meanwhile ("" if nothing)."""
        return ""

    @property
    def budget_seconds(self) -> float:
        """The recipe's time budget in seconds of training time (preparation included); 0: none."""
        return 60 * self.recipe.budget_minutes if self.recipe.budget_minutes > 0 else 0.0

    def after_step(self) -> None:
        """Called after each counted step (``step`` and ``elapsed`` updated). In a budgeted run
        the schedule is fitted to the steps the budget allows, so that a decaying learning rate
        ends when the time does rather than being cut off half-way: first from the speed over
        ``SPEED_WINDOW``'s steps, then once more from the speed over the first ``REFIT_SHARE``
        of the training time (validations and checkpoints included), which may lengthen it again
        up to the recipe's steps.

        The speed is measured from ``SPEED_WINDOW``'s first step on (or from the first step of a
        resumed run that has no measurement: a checkpoint from an older edgesr); the start of the
        window and whether the second fit was made are checkpointed, so a run stopped and resumed
        fits its schedule at the same steps as an uninterrupted run."""
        if not self.budget_seconds or self.refitted:
            return
        first, last = SPEED_WINDOW
        if self.speed_mark is None:
            if self.step >= first:
                self.speed_mark = (self.step, self.elapsed)
            return
        s0, t0 = self.speed_mark
        if self.horizon == self.planned_steps and self.step - s0 >= last - first:
            self.fit_horizon()
        elif self.elapsed - t0 >= REFIT_SHARE * (self.budget_seconds - t0):
            self.fit_horizon()
            self.refitted = True

    def fit_horizon(self) -> None:
        """Set the horizon to the steps that fit in ``BUDGET_SHARE`` of the budget left, at the
        speed measured since ``speed_mark`` (never more than the recipe's steps)."""
        s0, t0 = self.speed_mark
        rate = (self.step - s0) / max(self.elapsed - t0, 1e-9)
        left = BUDGET_SHARE * (self.budget_seconds - self.elapsed)
        self.set_horizon(min(self.planned_steps, self.step + max(int(rate * left), 1)))

    def set_horizon(self, horizon: int) -> None:
        """End the run (and its schedule) at ``horizon`` instead."""
        self.horizon = horizon

    def stage_ended(self) -> bool:
        """Whether the step just taken ended a stage of the method: the loop then logs and validates."""
        return False

    def log_fields(self) -> dict:
        """Values for each log line besides the losses (learning rate, stage, ...)."""
        return {}

    # ------------------------------------------------------------------ shared by every method
    def agree(self, loss: torch.Tensor) -> float:
        """The step's loss averaged over the ranks, read once: the same number on every rank, so
        that a non-finite loss on any rank makes every rank skip the update."""
        return float(self.world.mean(loss.detach()))

    def prepare(self, net: nn.Module) -> nn.Module:
        """``net`` on the training device, in the memory format the recipe asks for."""
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def as_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def validate(self) -> dict[str, float]:
        """PSNR of ``model`` on the held-out crops (float32, whole crops), per scale and mean."""
        return self.validation_scores(self.model) if self.val_pairs else {}

    @torch.no_grad()
    def validation_scores(self, net: nn.Module) -> dict[str, float]:
        """PSNR of ``net`` on the held-out crops, per scale and mean; ``net`` is left training."""
        out = validation_psnr(torch_predictor(net, self.device), self.val_pairs, input_kind(net))
        net.train()
        return out

    def reference_scores(self) -> dict[str, float]:
        """What validation is read against, logged once at step 0: the bicubic floor."""
        return {"val_bicubic_psnr": validation_psnr(bicubic_predictor, self.val_pairs)["val_psnr"]}
