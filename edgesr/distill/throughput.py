"""Student steps per second of a recipe on a device, measured on the real training step."""

from __future__ import annotations

import time

import torch

from ..models.vdsr import VDSR
from .recipe import DistillRecipe
from .trainer import Distiller


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(recipe: DistillRecipe, teacher: VDSR, device: torch.device, seconds: float = 10.0,
            warmup_cycles: int = 1) -> dict[str, float]:
    """Run whole training cycles for about ``seconds`` after a warm-up; report the rate.

    Whole cycles (``student_steps_per_gen_step`` student steps + one generator step) are timed,
    so the generator and CMI costs are included in proportion.
    """
    d = Distiller(recipe, teacher, device)
    k = recipe.student_steps_per_gen_step

    def cycle() -> None:
        for _ in range(k):
            d.train_step()
            d.step += 1

    for _ in range(max(warmup_cycles, 1)):
        cycle()
    _sync(device)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or steps == 0:
        cycle()
        steps += k
        _sync(device)
    elapsed = time.perf_counter() - start
    rate = steps / elapsed
    return {"steps_per_second": rate, "patches_per_second": rate * recipe.batch_size,
            "steps": steps, "seconds": elapsed}
