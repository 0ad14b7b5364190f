"""Tiny teacher-training setups: a few synthetic images and a VDSR small enough for a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgesr.config import from_dict
from edgesr.data.splits import holdout, validation_pairs
from edgesr.teacher.patches import PatchSampler, read_y
from edgesr.teacher.recipe import TeacherRecipe
from edgesr.teacher.trainer import TeacherTrainer
from edgesr.train.distributed import World


def write_images(folder: Path, n: int = 6, shape: tuple[int, int] = (61, 73), seed: int = 0) -> Path:
    """Colour PNGs of random rectangles on a gradient: sharp edges that bicubic blurs, so
    there is something to learn. Sizes not divisible by 2 or 3 exercise the modcrop."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = shape
    for i in range(n):
        img = np.linspace(0, 255, w)[None, :, None] * rng.uniform(0.2, 1, (1, 1, 3)) + np.zeros((h, 1, 1))
        for _ in range(12):
            top, left = rng.integers(0, h - 8), rng.integers(0, w - 8)
            img[top : top + rng.integers(4, 30), left : left + rng.integers(4, 30)] = rng.uniform(0, 255, 3)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def tiny_recipe(data: Path, **overrides) -> TeacherRecipe:
    base = {
        "name": "tiny", "data": str(data), "scales": [2, 3], "width": 8, "depth": 5, "batch_size": 8,
        "steps": 12, "patches": {"size": 24},
        "optim": {"name": "adam", "lr": 0.002, "betas": [0.9, 0.999], "schedule": "cosine", "warmup": 2,
                  "clip_grad_norm": 1.0},
        "validation": {"images": 2, "crop": 48, "every": 6}, "evaluation": {"sets": []},
        "device": "cpu", "checkpoint_every": 4, "log_every": 1,
    }
    base.update(overrides)
    return from_dict(TeacherRecipe, base)


def tiny_trainer(recipe: TeacherRecipe, world: World | None = None) -> TeacherTrainer:
    train, val = holdout(recipe.data, recipe.validation.images)
    cpu = torch.device("cpu")
    sampler = PatchSampler(read_y(train), recipe.scales, recipe.patches.size, cpu, recipe.patches.augment,
                           recipe.patches.downsizes)
    return TeacherTrainer(recipe, sampler, cpu, validation_pairs(val, list(recipe.scales), recipe.validation.crop),
                          world)
