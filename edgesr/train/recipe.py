"""The run-level keys every training recipe has, validated once for every trainer.

A method's recipe subclasses :class:`RunRecipe` and adds its own keys, so ``--set log_every=0``
is refused by the same range, with the same one-line error, whatever the command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from ..config import Count, DataPath, NonNegative, NonNegativeInt, Range, fail

SET5, SET14 = "../shared/data/Set5", "../shared/data/Set14"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class ValidationConfig:
    """The held-out split trainers are judged on during training (never Set5/Set14)."""

    #: folder of HR images whose last ``images`` (sorted) are held out; teacher training holds
    #: them out of its own ``data`` when this is empty
    data: DataPath | None = None
    images: Count = 8
    #: centre crop of each validation image (HR pixels), to keep validation cheap
    crop: Annotated[int, Range(16)] = 96
    every: Count = 500


@dataclass(frozen=True)
class EvaluationConfig:
    """The benchmark sets evaluated once, at the end, and never used to choose anything."""

    #: missing folders are reported and skipped, not a failure of a finished run
    sets: tuple[DataPath, ...] = (SET5, SET14)
    ssim: bool = True
    #: distillation: also evaluate the teacher (cached per teacher checksum in $EDGESR_HOME)
    teacher: bool = True


@dataclass(frozen=True)
class RunRecipe:
    """Keys of every training run: what the loop and the run folder read."""

    #: keys (and sections) a resumed run may change in its ``recipe.yaml``: where it runs, how
    #: often it saves, how long it may take and what it is judged on at the end, never what it
    #: learns (any other change is refused: the checkpoint was trained with the old value)
    RESUMABLE: ClassVar[tuple[str, ...]] = ("device", "threads", "checkpoint_every", "budget_minutes",
                                            "max_bad_steps", "evaluation")

    #: the run folder's name (``runs/<command>/<name>``)
    name: str = "run"
    #: one line on what the recipe is for (``edgesr recipes`` lists it)
    description: str = ""
    #: the hardware its steps and budget are sized for: a ``gpu`` recipe started on the CPU
    #: says so in one line with what to run there instead (its estimate would read days)
    made_for: Literal["any", "cpu", "gpu"] = "any"
    #: a smoke test: it shows the pipeline end to end, its result is not for use (the run ends
    #: without suggesting a next step that would use it)
    smoke_test: bool = False
    seed: NonNegativeInt = 0
    #: the global batch: under torchrun each of N processes trains on ``batch_size / N`` of it
    batch_size: Count = 64
    #: auto (CUDA when torch sees a GPU), cpu, cuda or cuda:N
    device: str = "auto"
    #: CPU threads (0: the automatic rule of ``edgesr.threads``); ``--threads`` sets it, so that a
    #: resumed run computes with the threads it was started with
    threads: Annotated[int, Range(0, 1024)] = 0
    #: CUDA only: bf16 autocast for the networks (data, losses, resizes and validation stay float32)
    bf16: bool = True
    #: CUDA only: channels-last memory format for the networks and their inputs
    channels_last: bool = True
    #: CPU: bf16 autocast and channels-last for the networks where the CPU multiplies bf16 in
    #: hardware (AMX or AVX-512 BF16: about 2.5x the float32 step rate); float32 elsewhere. The
    #: pool's teacher outputs, validation, evaluation and the saved weights stay float32
    cpu_bf16: bool = False
    checkpoint_every: Count = 1000
    log_every: Count = 50
    #: stop after this many consecutive non-finite losses
    max_bad_steps: Count = 5
    #: stop training after this many minutes of wall time (0 = no budget)
    budget_minutes: NonNegative = 0.0
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def validate(self) -> None:
        if not _NAME.fullmatch(self.name):
            fail("name", f"{self.name!r} is not a folder name (letters, digits, '.', '_', '-')")
        if not _DEVICE.fullmatch(self.device):
            fail("device", f"expected auto, cpu, cuda or cuda:N, got {self.device!r}")
