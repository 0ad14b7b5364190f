"""Calibration inputs for INT8: data-free (procedural priors, or a distillation run's
generators) or an image folder.

Data-free is the default because the whole point of the pipeline is that no training images
are needed: the samples that taught the student (the run's priors, or its generators when it
trained on them) also show the quantizer the activation ranges it will meet, and a model from
anywhere else is calibrated on the dead-leaves prior. An image folder (HR images through the
MATLAB pipeline) is the comparison. Either way the samples are LR Y patches in [0, 1]; :func:`model_inputs` turns
them into what the exported graph takes (LR itself, or its MATLAB-bicubic upscaling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import load_recipe
from ..data.benchmark import degrade
from ..data.images import list_images, read_rgb8
from ..errors import EdgesrError
from ..ops import image_to_y, imresize
from ..samples.priors import PRIORS, prior_images

#: HR patch side of the image-folder samples: the generators' 48 (LR 24/16/12 for x2/x3/x4)
HR_PATCH = 48

#: the prior of a model that comes with no run folder to say what taught it
DEFAULT_PRIOR = "dead-leaves"


@dataclass(frozen=True)
class Calibration:
    """Where the samples come from: ``kind`` is ``priors`` (``priors`` in proportion to
    ``weights``), ``generators`` (the run folder ``path``) or ``images`` (the folder ``path``)."""

    kind: str
    path: Path | None = None
    priors: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()

    def describe(self) -> dict:
        if self.kind == "priors":
            return {"kind": self.kind, "priors": list(self.priors), "weights": list(self.weights)}
        return {"kind": self.kind, "path": str(self.path)}


def run_recipe(run_dir: Path):
    """The distillation recipe of a run folder (None when it has none)."""
    from ..distill.recipe import DistillRecipe

    recipe_file = run_dir / "recipe.yaml"
    if not recipe_file.is_file():
        return None
    try:
        return load_recipe(DistillRecipe, str(recipe_file))
    except EdgesrError as e:
        raise EdgesrError(f"the run's recipe {recipe_file}: {e}") from None


def _run_calibration(run_dir: Path) -> Calibration | None:
    """What taught the student of this run folder: its recipe's priors when it trained on a
    pool only, else its generators; None when the folder is not a distillation run."""
    from ..distill.generator import GENERATORS_FILE

    recipe = run_recipe(run_dir)
    if recipe is not None:
        sm = recipe.samples
        if sm.generator_share == 0 and sm.pool_images:
            return Calibration("priors", priors=tuple(sm.priors), weights=tuple(sm.prior_weights))
    if (run_dir / GENERATORS_FILE).is_file():
        return Calibration("generators", run_dir)
    return None


def find_calibration(calib: str | Path | None, model: str) -> Calibration:
    """``--calib`` resolved: prior names (comma-separated), a run folder or an image folder;
    without it, whatever taught the run the model file sits in, else the default prior: the
    default is always data-free."""
    from ..distill.generator import GENERATORS_FILE

    if calib is None:
        found = _run_calibration(Path(model).parent) if Path(model).is_file() else None
        return found or Calibration("priors", priors=(DEFAULT_PRIOR,), weights=(1.0,))
    names = tuple(n.strip() for n in str(calib).split(","))
    if all(n in PRIORS for n in names):
        return Calibration("priors", priors=names, weights=(1.0,) * len(names))
    path = Path(calib)
    if not path.is_dir():
        raise EdgesrError(f"--calib {calib}: not a folder nor a prior ({', '.join(PRIORS)})")
    if found := _run_calibration(path):
        return found
    if not list_images(path):
        raise EdgesrError(f"calibration folder {calib} has no images and no {GENERATORS_FILE}")
    return Calibration("images", path)


def generator_samples(run_dir: Path, scale: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` LR patches ``(n, 1, lr, lr)`` from the run's generator for ``scale``."""
    import torch

    from ..distill.generator import load_generators

    gens = load_generators(run_dir)
    if scale not in gens:
        raise EdgesrError(f"{run_dir} has no generator for x{scale} (it has x{sorted(gens)})")
    return gens[scale].sample(n, generator=torch.Generator().manual_seed(seed)).numpy().astype(np.float32)


def image_samples(folder: Path, scale: int, n: int, seed: int = 0, hr_patch: int = HR_PATCH) -> np.ndarray:
    """``n`` LR patches from random ``hr_patch``-square crops of the folder's images."""
    rng = np.random.default_rng(seed)
    images = [read_rgb8(p) for p in list_images(folder)]
    images = [im for im in images if min(im.shape[:2]) >= hr_patch]
    if not images:
        raise EdgesrError(f"calibration folder {folder} has no images of at least {hr_patch}x{hr_patch} pixels")
    out = []
    for i in range(n):
        im = images[i % len(images)]
        top = rng.integers(0, im.shape[0] - hr_patch + 1)
        left = rng.integers(0, im.shape[1] - hr_patch + 1)
        out.append(degrade(image_to_y(im[top : top + hr_patch, left : left + hr_patch]), scale)[0])
    return np.stack(out)[:, None].astype(np.float32)


def prior_samples(priors: tuple[str, ...], weights: tuple[float, ...], scale: int, n: int,
                  seed: int = 0, hr_patch: int = HR_PATCH) -> np.ndarray:
    """``n`` LR patches: ``hr_patch``-square prior images through the MATLAB pipeline."""
    hr = prior_images(priors, weights, n, hr_patch, seed)
    return np.stack([degrade(im, scale)[0] for im in hr])[:, None].astype(np.float32)


def lr_samples(calib: Calibration, scale: int, n: int, seed: int = 0, lr_patch: int | None = None) -> np.ndarray:
    """``n`` LR patches of side ``lr_patch`` (default ``HR_PATCH // scale``); a generator's are
    the size it was made to draw, whatever ``lr_patch`` says."""
    if calib.kind == "generators":
        return generator_samples(calib.path, scale, n, seed)
    hr_patch = HR_PATCH if lr_patch is None else lr_patch * scale
    if calib.kind == "priors":
        return prior_samples(calib.priors, calib.weights, scale, n, seed, hr_patch)
    return image_samples(calib.path, scale, n, seed, hr_patch)


def model_inputs(lr: np.ndarray, scale: int, input_kind: str) -> np.ndarray:
    """What a graph of ``input_kind`` is fed for these LR patches."""
    if input_kind == "lr":
        return lr
    return imresize(lr, float(scale)).astype(np.float32)
