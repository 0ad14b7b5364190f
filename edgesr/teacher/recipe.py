"""The teacher-training recipe: every hyperparameter of ``edgesr teacher train`` in one object.

The optimiser reuses distillation's :class:`OptimConfig` (and its pure ``lr_at`` schedule), so
both trainers read the same keys the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ..distill.recipe import OptimConfig
from ..errors import EdgesrError


@dataclass(frozen=True)
class PatchConfig:
    #: HR patch side in pixels; patches come from whole images degraded once, so any size works
    size: int = 48
    #: random flips and 90-degree rotations (the 8 symmetries of the square)
    augment: bool = True
    #: also train on the images shrunk by these factors (MATLAB bicubic), as pytorch-vdsr does
    downsizes: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class HoldoutConfig:
    #: the last ``images`` of the training folder (sorted) are held out (``data.splits.holdout``)
    images: int = 8
    #: centre crop of each held-out image (HR pixels), to keep validation cheap
    crop: int = 96
    every: int = 500


@dataclass(frozen=True)
class BenchmarkConfig:
    #: benchmark folders evaluated once, at the end, never for selection (missing ones are skipped)
    sets: tuple[str, ...] = ("../shared/data/Set5", "../shared/data/Set14")
    ssim: bool = True


@dataclass(frozen=True)
class TeacherRecipe:
    name: str = "teacher"
    seed: int = 0
    #: folder of ground-truth training images (``--data``)
    data: Optional[str] = None
    #: one network for all of these; each patch of a batch draws its own scale
    scales: tuple[int, ...] = (2, 3, 4)
    width: int = 64
    depth: int = 20
    #: weights to start from (zoo name or file) instead of a random init: a second, fine-tuning
    #: stage, e.g. larger patches at a lower learning rate (``recipes/teacher-finetune.yaml``)
    init: Optional[str] = None
    batch_size: int = 64
    #: training steps (with ``budget_minutes``, an upper bound: see ``budget_minutes``)
    steps: int = 20000
    #: ``l1`` converges faster for PSNR; ``l2`` is the VDSR paper's
    loss: Literal["l1", "l2"] = "l1"
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        name="adam", lr=1e-3, betas=(0.9, 0.999), schedule="cosine", warmup=500, clip_grad_norm=1.0))
    patches: PatchConfig = field(default_factory=PatchConfig)
    validation: HoldoutConfig = field(default_factory=HoldoutConfig)
    evaluation: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    device: str = "auto"
    #: CUDA only: bf16 autocast for the network (data, loss and validation stay float32)
    bf16: bool = True
    channels_last: bool = True
    checkpoint_every: int = 1000
    log_every: int = 50
    #: stop after this many consecutive non-finite losses
    max_bad_steps: int = 5
    #: wall-clock budget of the training loop (0 = none). After a short speed measurement the
    #: schedule's horizon is shortened to the steps that fit, so the cosine decay ends on time.
    budget_minutes: float = 0.0

    def validate(self) -> None:
        if not self.scales or any(s < 2 or s > 8 for s in self.scales):
            raise EdgesrError("recipe key scales: give integers from 2 to 8")
        if len(set(self.scales)) != len(self.scales):
            raise EdgesrError("recipe key scales: a scale is repeated")
        if self.depth < 3 or self.width < 1:
            raise EdgesrError("recipe key depth/width: VDSR needs depth >= 3 and width >= 1")
        if self.patches.size < 8:
            raise EdgesrError(f"recipe key patches.size: {self.patches.size} is too small (min 8)")
        if any(not 0 < d <= 1 for d in self.patches.downsizes) or not self.patches.downsizes:
            raise EdgesrError("recipe key patches.downsizes: factors must be in (0, 1]")
        for key, value in (("batch_size", self.batch_size), ("steps", self.steps),
                           ("validation.images", self.validation.images), ("validation.every", self.validation.every),
                           ("checkpoint_every", self.checkpoint_every), ("log_every", self.log_every),
                           ("max_bad_steps", self.max_bad_steps)):
            if value < 1:
                raise EdgesrError(f"recipe key {key}: must be at least 1, got {value}")
        if self.budget_minutes < 0:
            raise EdgesrError("recipe key budget_minutes: must be 0 (none) or positive")
