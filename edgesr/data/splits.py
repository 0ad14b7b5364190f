"""Held-out validation images: checkpoints are judged on these, never on Set5/Set14."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgesrError
from .benchmark import SRPair, pair_from_image
from .images import list_images, read_rgb8


def holdout(folder: str | Path, n_val: int) -> tuple[list[Path], list[Path]]:
    """``(train, val)``: the last ``n_val`` images of the folder (sorted by name) are held out.

    Deterministic, so the distiller, the teacher trainer and the exporter's calibration agree
    on what is validation data.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgesrError(f"image folder not found: {folder}")
    images = list_images(folder)
    if len(images) <= n_val:
        raise EdgesrError(f"{folder} has {len(images)} images; need more than the {n_val} held out")
    return images[: len(images) - n_val], images[len(images) - n_val :]


def centre_crop(img, size: int):
    h, w = img.shape[:2]
    size_h, size_w = min(size, h), min(size, w)
    top, left = (h - size_h) // 2, (w - size_w) // 2
    return img[top : top + size_h, left : left + size_w]


def validation_pairs(paths: list[Path], scales: list[int], crop: int) -> dict[int, list[SRPair]]:
    """Centre crops of the held-out images through the MATLAB pipeline, per scale."""
    images = [(p.stem, centre_crop(read_rgb8(p), crop)) for p in paths]
    return {s: [pair_from_image(name, img, s) for name, img in images] for s in scales}
