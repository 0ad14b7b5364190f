"""Learning-rate schedules and the progressive stage plan, as pure functions of the step.

Pure functions (rather than torch scheduler objects) make resume trivial: the learning rate at
step t is recomputed from t, so nothing about the schedule needs saving.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from itertools import accumulate

from .recipe import OptimConfig, ProgressiveConfig


def lr_at(cfg: OptimConfig, step: int, total: int) -> float:
    """Learning rate after ``step`` of ``total`` steps."""
    if cfg.warmup and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** (step // max(cfg.step_every, 1))
    if cfg.schedule == "cosine":
        t = (step - cfg.warmup) / max(total - cfg.warmup, 1)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return cfg.lr


class StagePlan:
    """Which progressive stage a global student step belongs to, and how many body blocks it has.

    The body's ``n_blocks`` are split into ``stages`` parts as evenly as possible; stage k
    trains parts 0..k (block counts derived from the stage index, never accumulated).
    """

    def __init__(self, cfg: ProgressiveConfig, n_blocks: int) -> None:
        self.lengths = cfg.steps_per_stage()
        self.starts = [0, *accumulate(self.lengths)][:-1]
        self.stages = cfg.stages
        self.n_blocks = n_blocks

    @property
    def total(self) -> int:
        return sum(self.lengths)

    def stage_of(self, step: int) -> int:
        return min(bisect_right(self.starts, step) - 1, self.stages - 1)

    def blocks(self, stage: int) -> int:
        return round((stage + 1) * self.n_blocks / self.stages)

    def step_in_stage(self, step: int) -> int:
        return step - self.starts[self.stage_of(step)]
