"""One upload through a model: the work a demo worker thread does, with no HTTP in it.

Sizes are checked from the file's header before any pixel is decoded: the input against
``max_pixels``, the result (input times scale squared) against ``max_output_pixels``. The
photo path is the one ``edgesr upscale`` takes (:mod:`edgesr.runtime.photo`, tiled), so the
page shows exactly what the command line writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..runtime import Upscaler
from ..runtime.photo import (
    Photo,
    TooManyPixels,
    check_pixels,
    check_result,
    encode_png,
    image_size,
    read_photo,
    upscale_photo,
)
from .limits import Limits

#: zlib level of the PNG replies (the pixels are the same at any level): on a 2048x2048 result
#: level 1 took 0.44 s and 3.7 MB against 1.63 s and 3.0 MB for Pillow's default 6
PNG_LEVEL = 1


class LimitError(TooManyPixels):
    """Over one of the server's size limits (answered with 413, not 400)."""


@dataclass(frozen=True)
class Upscaled:
    png: bytes
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    #: seconds per stage: decode, model (the tiled photo pipeline), encode
    seconds: dict[str, float]


def check_sizes(width: int, height: int, scale: int, limits: Limits) -> None:
    try:
        check_pixels(width, height, limits.max_pixels)
    except TooManyPixels as exc:
        raise LimitError(f"{exc}: crop or shrink it first") from None
    try:
        check_result(width, height, scale, limits.max_output_pixels, "this server makes")
    except TooManyPixels as exc:
        raise LimitError(f"{exc}: try a smaller image") from None


def upscale_upload(upscaler: Upscaler, data: bytes, scale: int, limits: Limits) -> Upscaled:
    """PNG bytes of the upscaled upload; :class:`EdgesrError` for anything wrong with the upload."""
    t0 = time.perf_counter()
    check_sizes(*image_size(data), scale, limits)
    photo = read_photo(data, max_pixels=limits.max_pixels)
    t1 = time.perf_counter()
    out = upscale_photo(upscaler, photo, scale)
    t2 = time.perf_counter()
    png = encode_png(out, PNG_LEVEL)
    t3 = time.perf_counter()
    h, w = photo.pixels.shape[:2]
    return Upscaled(png, (w, h), (w * scale, h * scale), {"decode": t1 - t0, "model": t2 - t1, "encode": t3 - t2})


def warm_up(upscaler: Upscaler, limits: Limits) -> None:
    """One small image through the whole path, before the first person waits for it: loads the
    image plugins and lets the runtime plan its kernels, and proves the model runs at all."""
    upscale_upload(upscaler, encode_png(Photo(np.full((8, 8, 3), 128, np.uint8))), upscaler.meta.scale, limits)
