"""Reading images into arrays, with one-line errors for files that are not usable images."""

from __future__ import annotations

from collections.abc import Collection
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


def list_images(folder: Path, suffixes: Collection[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (``suffixes``: which files count;
    ``upscale`` takes every format it reads, GIF included)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


#: TIFF's SampleFormat tag values, by what they hold
_SAMPLE_FORMATS = {1: "unsigned integer", 2: "signed integer", 3: "floating-point"}


def depth_problem(im) -> str | None:
    """Why decoding the opened Pillow image ``im`` would silently lose image data, or None.

    Pillow reads a float32 TIFF as mode ``F`` (which converts to 8 bits by truncation, so
    values in [0, 1] all become 0 or 1), a 48-bit colour TIFF as 8-bit RGB (its low bytes
    dropped) and a signed 8-bit TIFF as unsigned (-1 becomes 255). edgesr keeps 8 and 16 bits
    end to end; anything else is refused in one line rather than upscaled wrong."""
    if im.mode == "F":
        return "its samples are floating-point: edgesr reads 8- and 16-bit integer images (save it as a 16-bit PNG)"
    if im.format != "TIFF":
        return None
    tags = getattr(im, "tag_v2", {})
    bits, fmt = tags.get(258, (8,)), tags.get(339, (1,))
    bits = tuple(bits) if isinstance(bits, (tuple, list)) else (bits,)
    fmt = tuple(fmt) if isinstance(fmt, (tuple, list)) else (fmt,)
    if im.mode == "I":  # 32-bit integers: read, then checked to lie in 0..65535
        return None
    if any(f != 1 for f in fmt):
        kind = _SAMPLE_FORMATS.get(next(f for f in fmt if f != 1), "unknown")
        return f"its samples are {max(bits)}-bit {kind}: edgesr reads 8- and 16-bit unsigned images"
    if max(bits) > 8 and not im.mode.startswith("I;16"):
        return (f"it is a TIFF of {max(bits)}-bit colour samples, which Pillow reads as 8 bits: save it as a "
                "16-bit PNG (edgesr keeps all 16 bits there)")
    return None


def read_rgb8(path: Path) -> np.ndarray:
    """An 8-bit image as ``HxW`` (grayscale) or ``HxWx3`` (colour) uint8.

    Grayscale stays single-channel because the SR protocol takes Y = gray for it.
    """
    from PIL import Image, ImageOps

    Image.init()  # registers every plugin: ``formats=`` looks each name up among them
    problem = None
    try:
        with Image.open(path, formats=READ_FORMATS) as im:
            problem = depth_problem(im)
            if problem:
                raise ValueError(problem)
            im = ImageOps.exif_transpose(im)
            if im.mode == "L":
                arr = np.asarray(im)
            elif im.mode in ("I;16", "I;16B", "I"):
                arr = (np.asarray(im, dtype=np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
            else:
                arr = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise EdgesrError(f"cannot read image {path}: {problem or type(exc).__name__}") from None
    if arr.size == 0:
        raise EdgesrError(f"image {path} is empty")
    return arr
