"""Reading images into arrays, with one-line errors for files that are not usable images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgesrError

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}
#: the Pillow formats an image is read from, whatever its name says; others (EPS runs
#: Ghostscript, PDF, PSD, ...) are refused, since uploads and folders may hold anything
READ_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")  # JPEG includes MPO (phone cameras)
#: the files ``edgesr upscale`` takes from a folder: every suffix of :data:`READ_FORMATS`
#: (GIF is read, but written as PNG: a still GIF's palette would lose the upscaled colours)
READ_SUFFIXES = IMAGE_SUFFIXES | {".gif"}


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_rgb8(path: Path) -> np.ndarray:
    """An 8-bit image as ``HxW`` (grayscale) or ``HxWx3`` (colour) uint8.

    Grayscale stays single-channel because the SR protocol takes Y = gray for it.
    """
    from PIL import Image, ImageOps

    Image.init()  # registers every plugin: ``formats=`` looks each name up among them
    try:
        with Image.open(path, formats=READ_FORMATS) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode == "L":
                arr = np.asarray(im)
            elif im.mode in ("I;16", "I;16B", "I"):
                arr = (np.asarray(im, dtype=np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
            else:
                arr = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise EdgesrError(f"cannot read image {path}: {type(exc).__name__}") from None
    if arr.size == 0:
        raise EdgesrError(f"image {path} is empty")
    return arr
