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


#: SSIM's window side (:mod:`edgesr.ops.metrics`): what must be left after the shaved border
_SSIM_WINDOW = 11


def min_side(scale: int) -> int:
    """The smallest image side the protocol scores at ``scale``, after the crop to a multiple of
    it: ``scale`` pixels shaved from each border, then SSIM's 11x11 window (one rule for PSNR
    and SSIM, so a set scores the same images either way)."""
    return 2 * scale + _SSIM_WINDOW


def check_size(what: str, height: int, width: int, scale: int) -> None:
    """One line for an image too small to score at ``scale`` (a 1x1 or 8x8 image in a set
    would fail deep inside the resize or SSIM); ``height``/``width`` as it is, before modcrop."""
    h, w = height - height % scale, width - width % scale
    if min(h, w) < min_side(scale):
        raise EdgesrError(f"{what} is {width}x{height}, too small to score at x{scale}: the protocol needs at least "
                          f"{min_side(scale)}x{min_side(scale)} (a {scale}-pixel border is shaved, then SSIM takes "
                          f"{_SSIM_WINDOW}x{_SSIM_WINDOW} windows); remove it from the set")


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
        if gt.ndim != 2 or gt.shape != bic.shape:
            raise EdgesrError(f"{f}: gt_y {gt.shape} and bicubic_y {bic.shape} are not one Y image each")
        check_size(str(f), *gt.shape, scale)
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
        out = []
        for p in files:
            img = read_rgb8(p)
            check_size(str(p), *img.shape[:2], scale)
            out.append(pair_from_image(p.stem, img, scale))
        return out

    def check(self, scales: Iterable[int]) -> None:
        """Refuse, before any work, a set with an image too small to score at one of
        ``scales`` (image headers only; prepared arrays are checked as :meth:`pairs` reads them)."""
        if self.prepared:
            return
        from PIL import Image

        from .images import READ_FORMATS

        Image.init()  # registers every plugin: ``formats=`` looks each name up among them
        for p in list_images(_image_folder(self.folder)):
            try:
                with Image.open(p, formats=READ_FORMATS) as im:
                    width, height = im.size
            except Exception:
                continue  # unreadable: reading it says so, in its own words
            for scale in scales:
                check_size(str(p), height, width, scale)


def open_set(path: str | Path) -> BenchmarkSet:
    """A benchmark set from a folder; a one-line error if it holds nothing usable."""
    folder = Path(path)
    if not folder.is_dir():
        raise EdgesrError(f"data folder not found: {path}")
    bset = BenchmarkSet(folder.name, folder)
    if not bset.prepared and not list_images(_image_folder(folder)):
        raise EdgesrError(f"{path} holds neither prepared arrays (y/*.npz) nor images")
    return bset


def check_sets(folders: Iterable[str | Path], scales: Iterable[int]) -> None:
    """:meth:`BenchmarkSet.check` for each of ``folders`` that exists: what a training run calls
    before training, so that its end-of-run evaluation cannot fail on a set's image after hours
    of work (missing folders are reported and skipped at the end: :func:`existing_sets`)."""
    scales = list(scales)
    for folder in folders:
        if Path(folder).is_dir():
            open_set(folder).check(scales)


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
