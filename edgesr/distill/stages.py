"""The progressive student's stage plan, as pure functions of the global student step."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

from .recipe import ProgressiveConfig


class StagePlan:
    """Which progressive stage a global student step belongs to, and how many body blocks it has.

    The body's ``n_blocks`` are split into ``stages`` parts as evenly as possible; stage k
    trains parts 0..k (block counts derived from the stage index, never accumulated).
    """

    def __init__(self, cfg: ProgressiveConfig, n_blocks: int, total: int | None = None) -> None:
        self.lengths = cfg.steps_per_stage()
        if total is not None and total != sum(self.lengths):  # fitted to a time budget: every stage shrinks alike
            planned = sum(self.lengths)
            self.lengths = [max(1, round(n * total / planned)) for n in self.lengths]
            self.lengths[-1] = max(1, total - sum(self.lengths[:-1]))
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
