"""Real photos through an SR artifact: colour via Y/CbCr, grayscale, alpha, 16-bit, EXIF.

VDSR-family models see only luma, so a colour photo goes to YCbCr (MATLAB BT.601, the same
transform as training and evaluation), Y through the network, Cb/Cr and alpha through the
MATLAB bicubic. Pixels keep their bit depth (8 or 16) end to end. Pillow reads and writes
everything except 16-bit colour PNG, which it silently truncates to 8 bits; pypng handles
those. EXIF orientation is applied on reading, so outputs are upright without a tag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgesrError
from ..io import atomic_path
from ..ops import imresize, rgb_to_ycbcr, ycbcr_to_rgb
from .base import Upscaler
from .tiling import DEFAULT_MARGIN, DEFAULT_TILE, upscale_tiled

#: channel layouts kept through the pipeline, by number of channels
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Photo:
    """``pixels``: ``HxWxC`` uint8 or uint16, upright; C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA."""

    pixels: np.ndarray

    @property
    def mode(self) -> str:
        return MODES[self.pixels.shape[2]]

    @property
    def bits(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def has_alpha(self) -> bool:
        return self.mode in ("LA", "RGBA")


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``HxWxC`` array, as Pillow's ``exif_transpose``."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(pixels)) if op else pixels


def _png_is_16bit(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(26)
    return len(head) == 26 and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16


def _read_png16(path: Path) -> np.ndarray:
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    return arr.reshape(height, width, info["planes"])


def _read_pillow(im) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise EdgesrError(f"{im.mode} pixels outside 0..65535 are not supported")
        return arr.astype(np.uint16)[..., None]
    if im.mode in ("1", "L"):
        return np.asarray(im.convert("L"))[..., None]
    if im.mode in ("LA", "La"):
        return np.asarray(im.convert("LA"))
    if im.mode in ("RGBA", "RGBa", "PA") or (im.mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))


def read_photo(path: str | Path) -> Photo:
    """An upright photo from any image file Pillow reads (16-bit PNGs kept at 16 bits)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            orientation = int(im.getexif().get(0x0112, 1))
            pixels = _read_png16(path) if _png_is_16bit(path) else _read_pillow(im)
    except EdgesrError as exc:
        raise EdgesrError(f"cannot read image {path}: {exc}") from None
    except Exception as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise EdgesrError(f"cannot read image {path}: {type(exc).__name__}"
                          + (f" ({detail})" if detail else "")) from None
    if pixels.size == 0:
        raise EdgesrError(f"image {path} is empty ({pixels.shape[1]}x{pixels.shape[0]})")
    return Photo(orient(pixels, orientation))


def write_photo(path: str | Path, photo: Photo) -> None:
    """Write atomically; 16 bits survive in PNG, other formats get 8 bits."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise EdgesrError(f"cannot write {path.name}: unknown image format {path.suffix!r}")
    pixels = photo.pixels
    if fmt == "JPEG" and photo.has_alpha:
        raise EdgesrError(f"cannot write {path.name}: JPEG has no alpha channel, use .png")
    with atomic_path(path) as tmp:
        if fmt == "PNG" and photo.bits == 16:
            import png

            h, w, c = pixels.shape
            writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16)
            with open(tmp, "wb") as f:
                writer.write(f, pixels.reshape(h, w * c))
        else:
            if photo.bits == 16:
                pixels = np.round(pixels / 257.0).astype(np.uint8)
            img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels, MODES[pixels.shape[2]])
            img.save(tmp, format=fmt)


def _sr_region(upscaler: Upscaler, scale: int, maxval: float, dtype) -> Callable[[np.ndarray], np.ndarray]:
    """The per-tile photo pipeline: integers in, the network on Y, bicubic on the rest, integers out."""

    def run(region: np.ndarray) -> np.ndarray:
        x = region.astype(np.float64) / maxval
        colour = x.shape[2] >= 3
        if colour:
            ycc = rgb_to_ycbcr(x[..., :3])
            y, rest = ycc[..., 0], [ycc[..., 1], ycc[..., 2]]
        else:
            y, rest = x[..., 0], []
        if x.shape[2] in (2, 4):
            rest.append(x[..., -1])
        sr_y = upscaler.upscale_y(y, scale).astype(np.float64)
        up = [imresize(c, float(scale)) for c in rest]
        if colour:
            out = [*np.moveaxis(ycbcr_to_rgb(np.stack([sr_y, up[0], up[1]], axis=-1)), -1, 0), *up[2:]]
        else:
            out = [sr_y, *up]
        return np.round(np.clip(np.stack(out, axis=-1), 0.0, 1.0) * maxval).astype(dtype)

    return run


def upscale_photo(upscaler: Upscaler, photo: Photo, scale: int | None = None, tile: int = DEFAULT_TILE,
                  margin: int = DEFAULT_MARGIN, on_tile: Callable[[int, int], None] | None = None) -> Photo:
    """The photo ``scale`` times larger (the artifact's scale by default), tiled above ``tile``."""
    scale = scale or upscaler.meta.scale
    upscaler.check_scale(scale)
    px = photo.pixels
    maxval = 65535.0 if photo.bits == 16 else 255.0
    out = np.empty((px.shape[0] * scale, px.shape[1] * scale, px.shape[2]), px.dtype)
    upscale_tiled(px, _sr_region(upscaler, scale, maxval, px.dtype), scale, out, tile, margin, on_tile)
    return Photo(out)
