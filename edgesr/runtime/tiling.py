"""Tiling with overlap, so that memory stays bounded on photos of any size.

A convolutional SR network's activations scale with the output area (the teacher keeps 64
float channels per output pixel), so a 12-megapixel output does not fit a Jetson in one
piece. Tiles are cut in LR coordinates; each is fed with a ``margin`` of real neighbouring
pixels and only its core is kept. With a margin wider than the network's receptive field
plus the bicubic support (VDSR: 20 HR pixels + 2 LR pixels), every kept pixel sees exactly
what it would see in the whole image, so tiled and whole results agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import EdgesrError

#: output (HR) side of one tile's core, in pixels: ~0.3 MP keeps the teacher under ~0.5 GB
DEFAULT_TILE = 512
#: the smallest ``--tile``: each tile is computed with its margin, so small tiles mostly compute
#: margins (the teacher at x2 on a 512x512 result: 2.9 s at 512, 9.8 s at 64, 24.5 s at 32)
MIN_TILE = 64
#: LR pixels of context on each side of a tile: VDSR's 20-pixel HR receptive radius at x2
#: plus the 2-pixel bicubic support, with room to spare for larger scales
DEFAULT_MARGIN = 16


@dataclass(frozen=True)
class Tile:
    """``core``: the LR rows/columns this tile produces; ``padded``: what the model is fed."""

    core: tuple[slice, slice]
    padded: tuple[slice, slice]


def _spans(n: int, core: int, margin: int) -> Iterator[tuple[slice, slice]]:
    for start in range(0, n, core):
        stop = min(start + core, n)
        yield slice(start, stop), slice(max(0, start - margin), min(n, stop + margin))


def check_tile(tile: int) -> None:
    """``--tile``: at least :data:`MIN_TILE` output pixels (the largest is what memory allows:
    :func:`edgesr.runtime.memory.check_fits`)."""
    if tile < MIN_TILE:
        raise EdgesrError(f"--tile must be at least {MIN_TILE} output pixels (smaller tiles spend their time on "
                          f"the overlap between tiles), got {tile}")


def plan_tiles(h: int, w: int, tile: int, margin: int) -> list[Tile]:
    """Tiles covering an ``h x w`` LR image with cores of ``tile`` LR pixels (one if it fits)."""
    if tile < 1 or margin < 0:
        raise ValueError(f"tile must be >= 1 and margin >= 0, got {tile}, {margin}")
    return [Tile((ry, rx), (py, px)) for ry, py in _spans(h, tile, margin) for rx, px in _spans(w, tile, margin)]


def upscale_tiled(lr: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], scale: int, out: np.ndarray,
                  tile: int = DEFAULT_TILE, margin: int = DEFAULT_MARGIN,
                  on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Fill ``out`` (``H*s x W*s x ...``) with ``fn`` applied tile by tile to ``lr`` (``H x W x ...``).

    ``tile`` is the HR side of a tile's core. ``fn`` maps an LR region to its ``scale``-times
    larger HR region; ``out``'s dtype decides the conversion (``fn`` returns what fits it).
    ``on_tile(done, total)`` reports progress.
    """
    h, w = lr.shape[:2]
    tiles = plan_tiles(h, w, max(1, tile // scale), margin)
    for i, t in enumerate(tiles):
        hr = fn(lr[t.padded])
        (cy, cx), (py, px) = t.core, t.padded
        oy, ox = (cy.start - py.start) * scale, (cx.start - px.start) * scale
        ny, nx = (cy.stop - cy.start) * scale, (cx.stop - cx.start) * scale
        out[cy.start * scale: cy.stop * scale, cx.start * scale: cx.stop * scale] = hr[oy: oy + ny, ox: ox + nx]
        if on_tile:
            on_tile(i + 1, len(tiles))
    return out
