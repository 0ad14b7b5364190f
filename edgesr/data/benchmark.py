"""SR benchmark sets: ground-truth Y and its MATLAB-bicubic degraded version, per scale.

Two sources, one result type:

* **prepared arrays** (``<set>/y/<name>_x<s>.npz`` with ``gt_y`` and ``bicubic_y``), the
  MATLAB-made reference; each set's own crop convention is baked into them;
* **any folder of ground-truth images** (``<dir>`` or ``<dir>/gt``), through the MATLAB
  pipeline: modcrop -> Y -> ``imresize(1/s)`` -> ``imresize(s)``, in float64.

NumPy only: the device-side bench evaluates through the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgesrError
from ..ops import image_to_y, imresize, modcrop
from .images import list_images, read_rgb8


@dataclass(frozen=True)
class SRPair:
    """One test image at one scale; both arrays float64 on the 0..255 scale."""

    name: str
    scale: int
    gt_y: np.ndarray
    bicubic_y: np.ndarray


def degrade(y: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lr, bicubic)`` of a modcropped Y image (any range): MATLAB down then up by ``scale``."""
    lr = imresize(y, 1.0 / scale)
    return lr, imresize(lr, float(scale))


def pair_from_image(name: str, img: np.ndarray, scale: int) -> SRPair:
    """The protocol's pair for an 8-bit image: per-scale modcrop, Y, down, up."""
    y = image_to_y(modcrop(img, scale))
    _, bic = degrade(y, scale)
    return SRPair(name, scale, 255.0 * y, 255.0 * bic)


def _prepared(folder: Path, files: list[Path], scale: int) -> list[SRPair]:
    if not files:
        raise EdgesrError(f"{folder} has no prepared arrays for x{scale} (y/<name>_x{scale}.npz)")
    pairs = []
    for f in files:
        try:
            with np.load(f) as d:
                gt, bic = np.asarray(d["gt_y"], np.float64), np.asarray(d["bicubic_y"], np.float64)
        except Exception as exc:
            raise EdgesrError(f"cannot read {f}: {type(exc).__name__}") from None
        pairs.append(SRPair(f.name[: -len(f"_x{scale}.npz")], scale, gt, bic))
    return pairs


def _image_folder(folder: Path) -> Path:
    return folder / "gt" if (folder / "gt").is_dir() else folder


@dataclass(frozen=True)
class BenchmarkSet:
    """A named set of test images; ``pairs(s)`` yields them at scale ``s``."""

    name: str
    folder: Path

    @property
    def prepared(self) -> bool:
        return (self.folder / "y").is_dir()

    def files(self, scale: int) -> list[Path]:
        """The files :meth:`pairs` reads at ``scale`` (what a cached score of the set depends on)."""
        if self.prepared:
            return sorted((self.folder / "y").glob(f"*_x{scale}.npz"))
        return list_images(_image_folder(self.folder))

    def pairs(self, scale: int) -> list[SRPair]:
        files = self.files(scale)
        if self.prepared:
            return _prepared(self.folder, files, scale)
        if not files:
            raise EdgesrError(f"no images in {_image_folder(self.folder)}")
        return [pair_from_image(p.stem, read_rgb8(p), scale) for p in files]


def open_set(path: str | Path) -> BenchmarkSet:
    """A benchmark set from a folder; a one-line error if it holds nothing usable."""
    folder = Path(path)
    if not folder.is_dir():
        raise EdgesrError(f"data folder not found: {path}")
    bset = BenchmarkSet(folder.name, folder)
    if not bset.prepared and not list_images(_image_folder(folder)):
        raise EdgesrError(f"{path} holds neither prepared arrays (y/*.npz) nor images")
    return bset


def existing_sets(folders: Iterable[str | Path], on_missing: Callable[[str], None]) -> list[BenchmarkSet]:
    """The benchmark sets among ``folders`` that exist; end-of-run evaluation reports the
    others through ``on_missing`` rather than failing a finished training run."""
    sets = []
    for folder in folders:
        if Path(folder).is_dir():
            sets.append(open_set(folder))
        else:
            on_missing(str(folder))
    return sets
