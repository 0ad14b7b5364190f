"""The distillation recipe: every hyperparameter of ``edgesr distill`` in one typed object.

Defaults are the paper's / DFSR reference values (METHOD.md); recipes in ``recipes/`` override
them. ``losses.w_c: 0`` is the DFSR baseline from the same code; ``generator.round_bicubic``
and ``generator.frozen`` mimic the released DFSR code for ablations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ..errors import EdgesrError
from ..models.zoo import Teachers


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    betas: tuple[float, ...] = (0.5, 0.999)
    weight_decay: float = 0.0
    #: gradient-norm clip (0 = off)
    clip_grad_norm: float = 0.0
    #: ``step``: lr x gamma every ``step_every`` steps; ``cosine``: to 0 over the stage; ``constant``
    schedule: Literal["step", "cosine", "constant"] = "step"
    step_every: int = 1000
    gamma: float = 0.1
    #: steps of linear warm-up from 0 (0 = none)
    warmup: int = 0


@dataclass(frozen=True)
class StudentConfig:
    width: int = 32
    depth: int = 20
    #: ``he``: VDSR init; ``zero-tail``: He with the last conv at 0 (starts exactly at bicubic);
    #: ``teacher-prune``: the teacher's ``width`` output channels of largest L1 norm per layer
    init: Literal["he", "zero-tail", "teacher-prune"] = "he"


@dataclass(frozen=True)
class GeneratorConfig:
    z_dim: int = 256
    channels: int = 128
    #: LR patch size per scale, in the order of ``scales``; HR patches are lr * scale
    lr_sizes: tuple[int, ...] = (24, 16, 12)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-5, schedule="constant"))
    #: Algorithm 1 line 20: also take gradient steps on a persistent z (0 = off)
    z_lr: float = 0.0
    #: DFSR-reference mimicry: never update the generators
    frozen: bool = False
    #: DFSR-reference mimicry: round the generator-path bicubic to 8 bits (kills its gradient)
    round_bicubic: bool = False


@dataclass(frozen=True)
class LossConfig:
    #: weight of the reconstruction loss L_R (Eq. 1)
    w_r: float = 1.0
    #: weight of the contrastive loss L_cr (Eq. 12); 0 = DFSR baseline
    w_c: float = 0.8
    #: weight of the adversarial term -log(L_KD + 1) (Eq. 2)
    w_adv: float = 1.0


@dataclass(frozen=True)
class CMIConfig:
    head_dim: int = 256
    head_lr: float = 1e-3
    temperature: float = 0.1
    #: memory bank entries per scale (a multiple of the batch size)
    bank_size: int = 40960
    #: negatives sampled from the bank per generator step
    negatives: int = 4096
    #: global view: random crop with this zero padding (LR pixels) + flip
    pad: int = 2
    #: local view: random resized crop with this area range + flip
    local_scale: tuple[float, ...] = (0.25, 1.0)


@dataclass(frozen=True)
class ProgressiveConfig:
    #: number of stages P (1 = train the full student from the start)
    stages: int = 1
    #: student steps in each stage (one value for all stages, or one per stage)
    steps: tuple[int, ...] = (1000,)

    def steps_per_stage(self) -> list[int]:
        return list(self.steps) * self.stages if len(self.steps) == 1 else list(self.steps)


@dataclass(frozen=True)
class ValidationConfig:
    #: folder of HR images; the last ``images`` of it (sorted) are held out (never Set5/Set14)
    data: Optional[str] = "../shared/data/train291"
    images: int = 8
    #: centre crop of each validation image (HR pixels), to keep validation cheap
    crop: int = 96
    every: int = 500


@dataclass(frozen=True)
class EvaluationConfig:
    #: benchmark folders evaluated once, at the end (missing folders are reported and skipped)
    sets: tuple[str, ...] = ("../shared/data/Set5", "../shared/data/Set14")
    ssim: bool = True
    #: also evaluate the teacher (cached per teacher checksum in $EDGESR_HOME)
    teacher: bool = True


@dataclass(frozen=True)
class DistillRecipe:
    name: str = "distill"
    seed: int = 0
    #: zoo name or weights file (default: ``Teachers.DEFAULT``)
    teacher: str = Teachers.DEFAULT.value.name
    scales: tuple[int, ...] = (2, 3, 4)
    batch_size: int = 128
    #: student steps per generator step (DFSR: 50)
    student_steps_per_gen_step: int = 50
    student: StudentConfig = field(default_factory=StudentConfig)
    student_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=0.1, weight_decay=1e-4, clip_grad_norm=0.4, step_every=60000)
    )
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    cmi: CMIConfig = field(default_factory=CMIConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    device: str = "auto"
    #: CUDA only: bf16 autocast for the networks (resizes stay float32)
    bf16: bool = True
    channels_last: bool = True
    checkpoint_every: int = 500
    log_every: int = 10
    #: stop after this many consecutive non-finite losses
    max_bad_steps: int = 5
    #: stop training after this many minutes of wall time (0 = no budget)
    budget_minutes: float = 0.0

    def validate(self) -> None:
        if len(self.generator.lr_sizes) != len(self.scales):
            raise EdgesrError("recipe key generator.lr_sizes: needs one LR size per scale")
        if self.cmi.bank_size % self.batch_size:
            raise EdgesrError(
                f"recipe key cmi.bank_size: {self.cmi.bank_size} is not a multiple of batch_size {self.batch_size}"
            )
        steps = self.progressive.steps
        if len(steps) not in (1, self.progressive.stages):
            raise EdgesrError("recipe key progressive.steps: give one value or one per stage")
        if self.progressive.stages > self.student.depth - 2 or self.progressive.stages < 1:
            raise EdgesrError("recipe key progressive.stages: must be between 1 and the number of body blocks")
        if any(s < 2 for s in self.scales):
            raise EdgesrError("recipe key scales: scales must be integers >= 2")
        if self.student_steps_per_gen_step < 1 or self.batch_size < 2:
            raise EdgesrError("recipe key batch_size/student_steps_per_gen_step: must be positive (batch >= 2)")

    @property
    def total_steps(self) -> int:
        return sum(self.progressive.steps_per_stage())
