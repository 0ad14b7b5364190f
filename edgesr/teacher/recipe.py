"""The teacher-training recipe: every hyperparameter of ``edgesr teacher train`` in one object.

The run-level keys (seed, device, intervals, budget, validation, evaluation) and the optimiser
settings are :mod:`edgesr.train`'s, read the same way as distillation's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from ..config import Count, DataPath, ModelRef, Range, Share, fail
from ..scales import Scale, check_scales
from ..train.optim import OptimConfig
from ..train.recipe import RunRecipe


@dataclass(frozen=True)
class PatchConfig:
    #: HR patch side in pixels; patches come from whole images degraded once, so any size works
    size: Annotated[int, Range(8)] = 48
    #: random flips and 90-degree rotations (the 8 symmetries of the square)
    augment: bool = True
    #: also train on the images shrunk by these factors (MATLAB bicubic), as pytorch-vdsr does
    downsizes: tuple[Share, ...] = (1.0,)


@dataclass(frozen=True)
class TeacherRecipe(RunRecipe):
    name: str = "teacher"
    #: folder of ground-truth training images (``--data``); its last ``validation.images`` are
    #: held out unless ``validation.data`` names another folder
    data: DataPath | None = None
    #: one network for all of these; each patch of a batch draws its own scale
    scales: tuple[Scale, ...] = (2, 3, 4)
    width: Count = 64
    depth: Annotated[int, Range(3)] = 20
    #: weights to start from (zoo name or file) instead of a random init: a second, fine-tuning
    #: stage, e.g. larger patches at a lower learning rate (``recipes/teacher-finetune.yaml``)
    init: ModelRef | None = None
    #: training steps (with ``budget_minutes``, an upper bound: the schedule is fitted to the budget)
    steps: Count = 20000
    #: ``l1`` converges faster for PSNR; ``l2`` is the VDSR paper's
    loss: Literal["l1", "l2"] = "l1"
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        name="adam", lr=1e-3, betas=(0.9, 0.999), schedule="cosine", warmup=500, clip_grad_norm=1.0))
    patches: PatchConfig = field(default_factory=PatchConfig)

    def validate(self) -> None:
        super().validate()
        check_scales(self.scales, "recipe key scales")
        if not self.patches.downsizes:
            fail("patches.downsizes", "give at least one factor (1.0 = the images as they are)")
