"""Calibration inputs for INT8: data-free (a distillation run's samples) or an image folder.

Data-free is the default because the whole point of the pipeline is that no training images
are needed: what taught the student also shows the quantizer the activation ranges it will
meet. That is the run's generators, or, for a run without generators (a student trained on
its sample pool alone, as ``quick`` is), new images of the pool's procedural priors, drawn
with another seed than the pool's. An image folder (HR images through the MATLAB pipeline) is
the comparison. Either way the samples are LR Y patches in [0, 1]; :func:`model_inputs` turns
them into what the exported graph takes (LR itself, or its MATLAB-bicubic upscaling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.benchmark import degrade
from ..data.images import list_images, read_rgb8
from ..errors import EdgesrError
from ..ops import image_to_y, imresize

#: HR patch side of the image-folder samples: the generators' 48 (LR 24/16/12 for x2/x3/x4)
HR_PATCH = 48


@dataclass(frozen=True)
class Calibration:
    """Where the samples come from: ``kind`` is ``generators``, ``priors`` (a run folder either
    way) or ``images``."""

    kind: str
    path: Path

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path)}


def find_calibration(calib: str | Path | None, model: str) -> Calibration:
    """``--calib`` resolved; without it, the run folder the model file sits in (data-free)."""
    from ..distill.generator import GENERATORS_FILE

    if calib is None:
        parent = Path(model).parent
        if Path(model).is_file() and (parent / GENERATORS_FILE).is_file():
            return Calibration(_run_kind(parent), parent)
        raise EdgesrError("INT8 needs calibration data: give --calib RUN_FOLDER (data-free, from "
                          "edgesr distill) or --calib IMAGE_FOLDER")
    path = Path(calib)
    if not path.is_dir():
        raise EdgesrError(f"calibration folder not found: {calib}")
    if (path / GENERATORS_FILE).is_file():
        return Calibration(_run_kind(path), path)
    if not list_images(path):
        raise EdgesrError(f"calibration folder {calib} has no images and no {GENERATORS_FILE}")
    return Calibration("images", path)


def _run_kind(run_dir: Path) -> str:
    """``generators`` for a run that trained some, else ``priors`` when its recipe drew a pool."""
    from ..distill.generator import load_generators

    if load_generators(run_dir) or not _run_recipe(run_dir).samples.priors:
        return "generators"
    return "priors"


def _run_recipe(run_dir: Path):
    from ..config import load_recipe
    from ..distill.recipe import DistillRecipe
    from ..train.run_folder import RECIPE_FILE

    if not (run_dir / RECIPE_FILE).is_file():
        raise EdgesrError(f"{run_dir} has no {RECIPE_FILE}: is it an edgesr distill run folder?")
    return load_recipe(DistillRecipe, str(run_dir / RECIPE_FILE))


def prior_samples(run_dir: Path, scale: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` LR patches ``(n, 1, lr, lr)``: new ``HR_PATCH``-square images of the run's priors
    (seeded apart from its pool), MATLAB-bicubic down by ``scale``."""
    from ..samples.pool import prior_images

    sm = _run_recipe(run_dir).samples
    hr = prior_images(sm.priors, sm.prior_weights, n, HR_PATCH, seed=10_000 + seed)
    lr = np.stack([degrade(im, scale)[0] for im in hr])[:, None]
    return np.clip(lr, 0, 1).astype(np.float32)


def generator_samples(run_dir: Path, scale: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` LR patches ``(n, 1, lr, lr)`` from the run's generator for ``scale``."""
    import torch

    from ..distill.generator import load_generators

    gens = load_generators(run_dir)
    if scale not in gens:
        raise EdgesrError(f"{run_dir} has no generator for x{scale} (it has x{sorted(gens)})")
    return gens[scale].sample(n, generator=torch.Generator().manual_seed(seed)).numpy().astype(np.float32)


def image_samples(folder: Path, scale: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` LR patches from random ``HR_PATCH``-square crops of the folder's images."""
    rng = np.random.default_rng(seed)
    images = [read_rgb8(p) for p in list_images(folder)]
    images = [im for im in images if min(im.shape[:2]) >= HR_PATCH]
    if not images:
        raise EdgesrError(f"calibration folder {folder} has no images of at least {HR_PATCH}x{HR_PATCH} pixels")
    out = []
    for i in range(n):
        im = images[i % len(images)]
        top = rng.integers(0, im.shape[0] - HR_PATCH + 1)
        left = rng.integers(0, im.shape[1] - HR_PATCH + 1)
        lr, _ = degrade(image_to_y(im[top : top + HR_PATCH, left : left + HR_PATCH]), scale)
        out.append(lr)
    return np.stack(out)[:, None].astype(np.float32)


def lr_samples(calib: Calibration, scale: int, n: int, seed: int = 0) -> np.ndarray:
    fn = {"generators": generator_samples, "priors": prior_samples, "images": image_samples}[calib.kind]
    return fn(calib.path, scale, n, seed)


def model_inputs(lr: np.ndarray, scale: int, input_kind: str) -> np.ndarray:
    """What a graph of ``input_kind`` is fed for these LR patches."""
    if input_kind == "lr":
        return lr
    return imresize(lr, float(scale)).astype(np.float32)
