"""The distillation recipe: every hyperparameter of ``edgesr distill`` in one typed object.

Defaults are the paper's / DFSR reference values (``docs/method.md``); recipes in ``recipes/``
override them. ``losses.w_c: 0`` is the DFSR baseline from the same code;
``generator.round_bicubic`` and ``generator.frozen`` mimic the released DFSR code for ablations.
The run-level keys (seed, device, intervals, budget, validation, evaluation) are
:class:`~edgesr.train.recipe.RunRecipe`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from ..config import Count, NonNegative, NonNegativeInt, Positive, Range, Share, fail
from ..models.zoo import Teachers
from ..scales import Scale, check_scales
from ..train.optim import OptimConfig
from ..train.recipe import RunRecipe, ValidationConfig


@dataclass(frozen=True)
class StudentConfig:
    width: Count = 32
    depth: Annotated[int, Range(3)] = 20
    #: ``he``: VDSR init; ``zero-tail``: He with the last conv at 0 (starts exactly at bicubic);
    #: ``teacher-prune``: the teacher's ``width`` output channels of largest L1 norm per layer
    init: Literal["he", "zero-tail", "teacher-prune"] = "he"


@dataclass(frozen=True)
class GeneratorConfig:
    z_dim: Count = 256
    channels: Annotated[int, Range(2)] = 128
    #: LR patch size per scale, in the order of ``scales``, each a multiple of 4 (at least 8: the
    #: first feature map, lr / 4, needs more than one pixel to normalise); HR patches are lr * scale
    lr_sizes: tuple[Annotated[int, Range(8)], ...] = (24, 16, 12)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-5, schedule="constant"))
    #: Algorithm 1 line 20: also take gradient steps on a persistent z (0 = off)
    z_lr: NonNegative = 0.0
    #: DFSR-reference mimicry: never update the generators
    frozen: bool = False
    #: DFSR-reference mimicry: round the generator-path bicubic to 8 bits (kills its gradient)
    round_bicubic: bool = False


@dataclass(frozen=True)
class LossConfig:
    #: weight of the reconstruction loss L_R (Eq. 1)
    w_r: NonNegative = 1.0
    #: weight of the contrastive loss L_cr (Eq. 12); 0 = DFSR baseline
    w_c: NonNegative = 0.8
    #: weight of the adversarial term -log(L_KD + 1) (Eq. 2)
    w_adv: NonNegative = 1.0


@dataclass(frozen=True)
class CMIConfig:
    head_dim: Count = 256
    head_lr: NonNegative = 1e-3
    temperature: Positive = 0.1
    #: memory bank entries per scale (a multiple of the batch size)
    bank_size: Count = 40960
    #: negatives sampled from the bank per generator step
    negatives: NonNegativeInt = 4096
    #: global view: random crop with this zero padding (LR pixels) + flip
    pad: NonNegativeInt = 2
    #: local view: random resized crop with this area range (low, high) + flip
    local_scale: tuple[Share, Share] = (0.25, 1.0)


@dataclass(frozen=True)
class ProgressiveConfig:
    #: number of stages P (1 = train the full student from the start)
    stages: Count = 1
    #: student steps in each stage (one value for all stages, or one per stage)
    steps: tuple[Count, ...] = (1000,)

    def steps_per_stage(self) -> list[int]:
        return list(self.steps) * self.stages if len(self.steps) == 1 else list(self.steps)


@dataclass(frozen=True)
class DistillRecipe(RunRecipe):
    name: str = "distill"
    #: zoo name or weights file (default: ``Teachers.DEFAULT``)
    teacher: str = Teachers.DEFAULT.value.name
    scales: tuple[Scale, ...] = (2, 3, 4)
    batch_size: Annotated[int, Range(2)] = 128
    #: student steps per generator step (DFSR: 50)
    student_steps_per_gen_step: Count = 50
    student: StudentConfig = field(default_factory=StudentConfig)
    student_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=0.1, weight_decay=1e-4, clip_grad_norm=0.4, step_every=60000)
    )
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    cmi: CMIConfig = field(default_factory=CMIConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    validation: ValidationConfig = field(default_factory=lambda: ValidationConfig(data="../shared/data/train291"))

    def validate(self) -> None:
        super().validate()
        check_scales(self.scales, "recipe key scales")
        if len(self.generator.lr_sizes) != len(self.scales):
            fail("scales", f"{list(self.scales)} needs one generator.lr_sizes entry per scale, "
                           f"got {list(self.generator.lr_sizes)}: set both")
        if any(s % 4 for s in self.generator.lr_sizes):
            fail("generator.lr_sizes", f"each must be a multiple of 4, got {list(self.generator.lr_sizes)}")
        if self.cmi.bank_size % self.batch_size:
            fail("cmi.bank_size", f"{self.cmi.bank_size} is not a multiple of batch_size {self.batch_size}")
        if self.cmi.local_scale[0] > self.cmi.local_scale[1]:
            fail("cmi.local_scale", f"low {self.cmi.local_scale[0]} is above high {self.cmi.local_scale[1]}")
        if len(self.progressive.steps) not in (1, self.progressive.stages):
            fail("progressive.steps", "give one value or one per stage")
        if self.progressive.stages > self.student.depth - 2:
            fail("progressive.stages", f"must be at most the {self.student.depth - 2} body blocks of student.depth")

    @property
    def total_steps(self) -> int:
        return sum(self.progressive.steps_per_stage())
